// Sessions (`/api/v1/sessions`): list, extend, end and share. Starting a lab session and the
// files API belong to the lab workspace.
import { get, post, request } from "../api";

export type SessionStatus = "running" | "suspended" | "ended" | (string & {});

export interface SessionInfo {
  id: string;
  status: SessionStatus;
  environment: string;
  /** The lab's slug for a lab session. */
  lab?: string | null;
  created_at: string;
  expires_at: string;
  ended_at?: string | null;
  end_reason?: string | null;
}

export interface ShareLink {
  /** Pass as `?share=` to the terminal route. */
  token: string;
  /** The read-only terminal's WebSocket path. */
  terminal: string;
}

const path = (id: string) => `/api/v1/sessions/${encodeURIComponent(id)}`;

export const sessions = {
  list: (signal?: AbortSignal) => get<{ sessions: SessionInfo[] }>("/api/v1/sessions", signal ? { signal } : {}),
  create: (body: { environment?: string; ttl_seconds?: number } = {}) => post<SessionInfo>("/api/v1/sessions", body),
  extend: (id: string, ttlSeconds?: number) =>
    post<SessionInfo>(`${path(id)}/extend`, ttlSeconds === undefined ? {} : { ttl_seconds: ttlSeconds }),
  end: (id: string) => request<void>("DELETE", path(id)),
  share: (id: string) => post<ShareLink>(`${path(id)}/share`, {}),
  /** The terminal's WebSocket URL on this origin (`share` for a read-only view of someone's). */
  terminalUrl: (id: string, options: { share?: string; rows?: number; cols?: number } = {}) => {
    const url = new URL(`${path(id)}/terminal`, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (options.share) url.searchParams.set("share", options.share);
    if (options.rows) url.searchParams.set("rows", String(options.rows));
    if (options.cols) url.searchParams.set("cols", String(options.cols));
    return url.toString();
  },
};
