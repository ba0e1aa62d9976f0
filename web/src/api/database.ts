// The user's own database (`/api/v1/database`): one per user, a SQLite file or a PostgreSQL
// database and role, that their apps reach through `DATABASE_URL`; and the viewer's reads (its
// tables, a table's rows a page at a time) and console (one statement, read-only unless
// `write`). A PostgreSQL role's credentials come only in the answers that make or rotate them.
import { ApiError, get, post, request } from "../api";

export type Engine = "sqlite" | "postgres" | (string & {});

export interface DatabaseView {
  engine: Engine;
  /** PostgreSQL: the database's (and its role's) name; SQLite: the file's. */
  name: string;
  /** What apps get as `DATABASE_URL`, without the password. */
  app_url: string;
  /** SQLite: the file's size now. */
  size_bytes?: number | null;
  created_at: string;
  rotated_at?: string | null;
}

/** Shown when the database is made and when they are rotated, never again. */
export interface Credentials {
  username: string;
  password: string;
  database: string;
  /** `DATABASE_URL` with the password. */
  app_url: string;
}

export interface DatabaseCreated {
  database: DatabaseView;
  /** PostgreSQL only. */
  credentials?: Credentials | null;
  /** After a rotation: the jobs deploying the user's running apps again with the new password. */
  redeploys?: string[];
}

export interface Column {
  name: string;
  /** As the engine names it; may be empty in SQLite (and always is in a console answer). */
  type: string;
  primary_key?: boolean;
  not_null?: boolean;
}

export interface TableView {
  name: string;
  kind: "table" | "view" | (string & {});
  /** Views are not counted. */
  rows?: number | null;
  columns: Column[];
}

/** Numbers, text, booleans, null; binary as its size and hex. Long text is cut and ends in `…`. */
export type Cell = number | string | boolean | null | { bytes: number; hex: string } | (object & {});

export interface RowsPage {
  columns: Column[];
  rows: Cell[][];
  offset: number;
  limit: number;
  total: number;
}

export interface QueryResult {
  /** Empty for a statement that returns no rows. */
  columns: Column[];
  rows: Cell[][];
  /** More rows than were sent. */
  truncated: boolean;
  /** Rows a write changed. */
  rows_affected?: number | null;
}

export const engineLabels: Record<string, string> = { sqlite: "SQLite", postgres: "PostgreSQL" };

/** What a SQLite database's apps also get: the file's path. */
export const SQLITE_PATH = "/data/app.sqlite";

const opts = (signal?: AbortSignal) => (signal ? { signal } : {});

export const database = {
  /** The user's database, or `null` when they have none yet (a 404). */
  get: (signal?: AbortSignal) =>
    get<DatabaseView>("/api/v1/database", opts(signal)).catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }),
  /** 409 `database_exists`: one per user. */
  create: () => post<DatabaseCreated>("/api/v1/database"),
  remove: () => request<void>("DELETE", "/api/v1/database"),
  /**
   * PostgreSQL only: a new password, the old one stops working, and the running apps are deployed
   * again with it (409 `no_credentials` for SQLite).
   */
  rotate: () => post<DatabaseCreated>("/api/v1/database/rotate"),
  tables: (signal?: AbortSignal) => get<{ tables: TableView[] }>("/api/v1/database/tables", opts(signal)),
  rows: (table: string, offset: number, limit: number, signal?: AbortSignal) =>
    get<RowsPage>(`/api/v1/database/tables/${encodeURIComponent(table)}/rows?offset=${offset}&limit=${limit}`, opts(signal)),
  /** 409 `read_only` for a statement that writes without `write`; 422 with the database's message. */
  query: (sql: string, write: boolean) => post<QueryResult>("/api/v1/database/query", { sql, write }),
};
