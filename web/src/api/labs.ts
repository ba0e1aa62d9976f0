// Typed calls for the lab workspace: labs, sessions, files, the judge (SSE) and hints.
// JSON calls go through `request()` (errors become `ApiError`); the judge's event stream needs
// raw `fetch` (`fetchRaw`), with the same error handling.
import { ApiError, errorFromResponse, fetchRaw, get, post, request } from "../api";
import { filesAt } from "./files";

export interface LabProgress {
  steps_passed: number;
  steps_total: number;
  completed: boolean;
  completed_at: string | null;
  attempts: number;
  last_attempt_at: string | null;
}

export interface LabStep {
  id: string;
  title: string;
  markdown: string;
  checks: number;
  hints: number;
  passed: boolean;
}

export interface SessionInfo {
  id: string;
  status: "running" | "suspended" | "ended" | (string & {});
  environment: string;
  created_at: string;
  expires_at: string;
  lab?: string | null;
  ended_at?: string | null;
  end_reason?: string | null;
}

export interface Lab {
  slug: string;
  title: string;
  summary: string;
  difficulty: string;
  tags: string[];
  environment: string;
  steps: LabStep[];
  progress?: LabProgress | null;
  active_session?: SessionInfo | null;
}

export interface StartResponse {
  session: SessionInfo;
  created: boolean;
}

export interface Failure {
  code: string;
  message: string;
  hint?: string | null;
}

export interface Attempt {
  id: string;
  lab: string;
  step: string;
  session_id: string;
  passed: boolean;
  failures: Failure[];
  metrics?: unknown;
  notes?: string[] | string | null;
  submitted_at: string;
}

export interface HintResponse {
  text: string;
  source: "llm" | "authored" | "failures" | (string & {});
  step?: string | null;
  provider?: string | null;
  model?: string | null;
  fallback_reason?: string | null;
  level?: number | null;
  levels?: number | null;
}

export interface ExplainRequest {
  topic?: string;
  code?: string;
  error?: string;
}

const enc = encodeURIComponent;

export const labs = {
  get: (slug: string) => get<Lab>(`/api/v1/labs/${enc(slug)}`),
  start: (slug: string) => post<StartResponse>(`/api/v1/labs/${enc(slug)}/start`),
};

export const sessions = {
  get: (id: string) => get<SessionInfo>(`/api/v1/sessions/${enc(id)}`),
  extend: (id: string) => post<SessionInfo>(`/api/v1/sessions/${enc(id)}/extend`, {}),
  end: (id: string) => request<void>("DELETE", `/api/v1/sessions/${enc(id)}`),
  hint: (id: string, step?: string) => postWithRetryAfter<HintResponse>(`/api/v1/sessions/${enc(id)}/hint`, step ? { step } : {}),
  explain: (id: string, body: ExplainRequest) =>
    postWithRetryAfter<HintResponse>(`/api/v1/sessions/${enc(id)}/explain`, body),
  terminalUrl: (id: string, rows: number, cols: number) => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/v1/sessions/${enc(id)}/terminal?rows=${rows}&cols=${cols}`;
  },
};

/** A 429 with the server's `Retry-After` (seconds), which the error envelope does not carry. */
export class RateLimitedError extends ApiError {
  declare readonly retryAfter: number;
  constructor(base: ApiError, retryAfter: number) {
    super(base.status, base.code, `Too many requests — try again in ${retryAfter} s`, retryAfter);
  }
}

async function postWithRetryAfter<T>(path: string, body: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network_error", "Could not reach the server. Check your connection and try again.");
  }
  if (response.status === 429) {
    const base = await errorFromResponse(response);
    throw new RateLimitedError(base, base.retryAfter ?? 60);
  }
  if (!response.ok) throw await errorFromResponse(response);
  return (await response.json()) as T;
}

/** A session's workspace files (list, read with its ETag, write with `If-Match`, delete, move). */
export const sessionFiles = (id: string) => filesAt(`/api/v1/sessions/${enc(id)}`);

/** POSTs the judge with `Accept: text/event-stream`; the caller reads `response.body`. */
export function judgeStream(id: string, step: string | undefined, signal?: AbortSignal): Promise<Response> {
  const init: RequestInit = {
    method: "POST",
    headers: { Accept: "text/event-stream", "Content-Type": "application/json" },
    body: JSON.stringify(step ? { step } : {}),
  };
  if (signal) init.signal = signal;
  return fetchRaw(`/api/v1/sessions/${enc(id)}/judge`, init);
}

