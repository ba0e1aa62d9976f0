// Apps (`/api/v1/apps`): a learner's web app, deployed as versions and served by the platform's
// proxy at its `url`. A deploy is a job (`jobs.events` follows it: validating → installing →
// starting → healthy); the app's log streams as server-sent events (`src/apps/appLogs.ts`).
import { ApiError, fetchRaw, get, post, request } from "../api";

export type AppRuntime = "python" | "node" | "static";

export interface App {
  id: string;
  name: string;
  runtime: AppRuntime;
  entry: string;
  /** Anyone may call it; private: only its owner, signed in. */
  public: boolean;
  /** Not deleted when idle. */
  pinned: boolean;
  env: Record<string, string>;
  /** Names only: the values are write-only. */
  secrets: string[];
  /** Where it is served (path mode: `/user/<username>/app/<name>/` on this origin). */
  url: string;
  /** What the owner asked for. */
  desired: "running" | "stopped" | (string & {});
  live_version: number | null;
  last_request_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface CreateAppRequest {
  /** 1–40 of a-z, 0-9 and inner `-`, unique among the user's apps (409 `conflict`). */
  name: string;
  runtime: AppRuntime;
  /** Python `module:attribute` (default `main:app`), Node the file to run (`server.js`). */
  entry?: string;
  public?: boolean;
  pinned?: boolean;
  env?: Record<string, string>;
  secrets?: Record<string, string>;
}

/** Absent fields stay; `secrets` replaces all of them. */
export interface UpdateAppRequest {
  name?: string;
  entry?: string;
  public?: boolean;
  pinned?: boolean;
  env?: Record<string, string>;
  secrets?: Record<string, string>;
}

/** Exactly one: files (path → text), a live session's workspace, or a project's files. */
export type DeploySource = { files: Record<string, string> } | { session_id: string } | { project_id: string };

/** Why a deploy failed. */
export interface DeployError {
  /** `validating`, `installing`, `starting` (or `deploy` for its time limit). */
  stage: string;
  code: string;
  message: string;
  file?: string | null;
  line?: number | null;
  /** The app's last log lines, `[stream] text`. */
  logs?: string[] | null;
}

export type VersionState = "pending" | "live" | "superseded" | "failed" | "cancelled" | (string & {});

export interface Version {
  version: number;
  files: number;
  bytes: number;
  /** `request`, `session:<id>`, `project:<id>` or `version:<n>` (a rollback). */
  source: string;
  state: VersionState;
  job_id?: string | null;
  error?: DeployError | null;
  created_at: string;
  finished_at?: string | null;
}

export interface Deployment {
  version: Version;
  job_id: string;
}

export type AppState = "not_deployed" | "deploying" | "starting" | "running" | "crashed" | "idle" | "stopped" | "failed" | (string & {});

export interface AppStatus {
  state: AppState;
  live_version?: number | null;
  serving_version?: number | null;
  restarts: number;
  started_at?: string | null;
  /** The newest version's deploy while it runs or when it failed. */
  deploy?: Version | null;
  url: string;
}

export type LogStream = "stdout" | "stderr" | "platform" | (string & {});

export interface LogLine {
  /** Increasing per app: the follow stream's event id. */
  seq: number;
  at: string;
  stream: LogStream;
  text: string;
}

export const runtimes: { value: AppRuntime; label: string; entry: string }[] = [
  { value: "python", label: "Python (FastAPI, Flask, ASGI or WSGI)", entry: "main:app" },
  { value: "node", label: "Node (Express or http)", entry: "server.js" },
  { value: "static", label: "Static files", entry: "index.html" },
];

export const appRules = {
  name: {
    maxLength: 40,
    // HTML `pattern` syntax (anchored, `v` flag): a DNS label.
    pattern: "[a-z0-9](?:[a-z0-9\\-]*[a-z0-9])?",
    hint: "1–40 lowercase letters, digits and inner hyphens: it is part of the app's address.",
  },
} as const;

/** People's words for `AppStatus.state`. */
export const stateLabels: Record<string, string> = {
  not_deployed: "not deployed",
  deploying: "deploying",
  starting: "starting",
  running: "running",
  crashed: "crashed, restarting",
  idle: "idle (starts on the next request)",
  stopped: "stopped",
  failed: "failed",
};

const enc = encodeURIComponent;

/** The app's page in this UI (not where it is served: that is its `url`). */
export const appHref = (id: string) => `/apps/${enc(id)}`;

const path = (id: string) => `/api/v1/apps/${enc(id)}`;
const opts = (signal?: AbortSignal) => (signal ? { signal } : {});

export const apps = {
  /** Newest first. */
  list: (signal?: AbortSignal) => get<{ apps: App[] }>("/api/v1/apps", opts(signal)),
  /** 409 `conflict` for a name taken, 409 `app_limit` beyond the per-user cap. */
  create: (body: CreateAppRequest) => post<App>("/api/v1/apps", body),
  get: (id: string, signal?: AbortSignal) => get<App>(path(id), opts(signal)),
  update: (id: string, body: UpdateAppRequest) => request<App>("PATCH", path(id), { body }),
  remove: (id: string) => request<void>("DELETE", path(id)),
  /** Queues a deploy (202): follow `job_id`'s events. */
  deploy: (id: string, source: DeploySource) => post<Deployment>(`${path(id)}/deploy`, source),
  status: (id: string, signal?: AbortSignal) => get<AppStatus>(`${path(id)}/status`, opts(signal)),
  /** Newest first. */
  versions: (id: string, signal?: AbortSignal) => get<{ versions: Version[] }>(`${path(id)}/versions`, opts(signal)),
  /** Deploys `version`'s files again, as a new version. */
  rollback: (id: string, version: number) => post<Deployment>(`${path(id)}/rollback`, { version }),
  stop: (id: string) => post<void>(`${path(id)}/stop`),
  start: (id: string) => post<void>(`${path(id)}/start`),
  /** Follows the log: the last `tail` lines, or those after `after` (`Last-Event-ID`), then new ones. */
  logs: async (id: string, after: number, tail: number, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> => {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (after > 0) headers["Last-Event-ID"] = String(after);
    const response = await fetchRaw(`${path(id)}/logs?follow=true&tail=${tail}`, { headers, signal, cache: "no-store" });
    if (!response.body) throw new ApiError(0, "no_body", "The server sent no log.");
    return response.body;
  },
};
