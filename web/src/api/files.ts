// Files under a resource that has them: a session's workspace (`/api/v1/sessions/{id}/files`)
// and a project (`/api/v1/projects/{id}/files`) answer the same routes — list, read with an
// ETag, write with `If-Match` / `If-None-Match: *`, delete, move — so the editor takes a
// `FileApi` and does not care which it edits.
import { fetchRaw, get } from "../api";

export interface FileEntry {
  path: string;
  /** Sessions also list `symlink` and `other` (FIFOs, devices); projects hold files only. */
  kind: "file" | "dir" | "symlink" | "other";
  size: number;
  modified: string | null;
  /** A project file's version (sessions do not list it): the same value `read` answers. */
  etag?: string | null;
}

export interface FileContent {
  text: string;
  etag: string | null;
}

export interface Written {
  path: string;
  size: number;
  etag: string;
}

export interface FileApi {
  list: () => Promise<FileEntry[]>;
  read: (path: string) => Promise<FileContent>;
  /**
   * Writes `text`. `etag` set: only over that version (412 otherwise); `null`: only where nothing
   * is yet (a new file); `undefined`: unconditionally (Overwrite after a conflict).
   */
  write: (path: string, text: string, etag: string | null | undefined) => Promise<Written>;
  /** Deletes a file (a folder with everything under it). */
  remove: (path: string) => Promise<void>;
  /** Renames `from` to `to` (409 `already_exists` when `to` is taken). */
  move: (from: string, to: string) => Promise<void>;
}

/** A path in a URL: each segment encoded, the slashes kept. */
export const filePath = (path: string) => path.split("/").map(encodeURIComponent).join("/");

/** The files routes under `base` (`/api/v1/sessions/<id>` or `/api/v1/projects/<id>`). */
export function filesAt(base: string): FileApi {
  const url = (path: string) => `${base}/files/${filePath(path)}`;
  return {
    list: async () => (await get<{ entries: FileEntry[] }>(`${base}/files`)).entries,
    read: async (path) => {
      const response = await fetchRaw(url(path), { headers: { Accept: "application/octet-stream" }, cache: "no-store" });
      return { text: await response.text(), etag: response.headers.get("ETag") };
    },
    write: async (path, text, etag) => {
      const headers: Record<string, string> = { "Content-Type": "application/octet-stream", Accept: "application/json" };
      if (etag) headers["If-Match"] = etag;
      else if (etag === null) headers["If-None-Match"] = "*";
      const response = await fetchRaw(url(path), { method: "PUT", headers, body: text });
      return (await response.json()) as Written;
    },
    remove: async (path) => {
      await fetchRaw(url(path), { method: "DELETE" });
    },
    move: async (from, to) => {
      const query = new URLSearchParams({ op: "move", to });
      await fetchRaw(`${url(from)}?${query}`, { method: "POST", headers: { Accept: "application/json" } });
    },
  };
}
