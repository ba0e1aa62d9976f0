// Typed client for the sandpit REST API (same origin, session cookie set by the server).
//
// Every failure — an error envelope from the server, a non-JSON error page from a proxy, or no
// answer at all — surfaces as an `ApiError` whose `message` is fit to show to a person.

/** The server's error envelope: `{"error": {"code": "snake_case", "message": "human text"}}`. */
export interface ErrorEnvelope {
  error: { code: string; message: string };
}

export class ApiError extends Error {
  /** HTTP status, or 0 when the server could not be reached. */
  readonly status: number;
  /** Stable snake_case code from the server (`unauthorized`, `conflict`, ...), or a client-side one. */
  readonly code: string;
  /** Seconds from the answer's `Retry-After` (a 429, or a 503 while the server gets ready), if any. */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string, message: string, retryAfter?: number) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  get isUnauthorized(): boolean {
    return this.status === 401;
  }
}

/** `learner` (default), `author` (writes labs) or `admin`; unknown future roles still display. */
export type Role = "learner" | "author" | "admin" | (string & {});

export interface User {
  id: string;
  username: string;
  email: string | null;
  role: Role;
  created_at: string;
}

export interface AuthResponse {
  user: User;
  token: string;
}

export interface Providers {
  github: boolean;
}

export interface SignupRequest {
  username: string;
  password: string;
  email?: string;
}

export interface LoginRequest {
  username: string;
  password: string;
}

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestOptions {
  /** JSON-serialised into the request body. */
  body?: unknown;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

function isErrorEnvelope(value: unknown): value is ErrorEnvelope {
  if (typeof value !== "object" || value === null) return false;
  const error = (value as { error?: unknown }).error;
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { code?: unknown }).code === "string" &&
    typeof (error as { message?: unknown }).message === "string"
  );
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function fallbackMessage(status: number): string {
  if (status === 401) return "You are not signed in.";
  if (status === 403) return "You are not allowed to do that.";
  if (status === 404) return "Not found.";
  if (status === 429) return "Too many requests. Please wait a moment and try again.";
  if (status >= 500) return "The server had a problem. Please try again later.";
  return `The request failed (HTTP ${status}).`;
}

/** `Retry-After` in seconds: delta-seconds or an HTTP date; `undefined` when absent or unreadable. */
export function retryAfterSeconds(header: string | null): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  if (/^\s*\d+\s*$/.test(header)) return Number.parseInt(header, 10);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** Turns a non-2xx response into an `ApiError`, using the envelope when there is one. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  const body = await readJson(response);
  const retryAfter = retryAfterSeconds(response.headers.get("Retry-After"));
  if (isErrorEnvelope(body)) {
    return new ApiError(response.status, body.error.code, body.error.message, retryAfter);
  }
  return new ApiError(response.status, `http_${response.status}`, fallbackMessage(response.status), retryAfter);
}

/**
 * Sends a JSON request to `path` (an absolute path such as `/api/v1/auth/me`) and returns the
 * parsed JSON body, or `undefined` for an empty body (204).
 */
export async function request<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
  const init: RequestInit = { method, headers, credentials: "same-origin" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  } else if (method !== "GET") {
    // Declared on every write so the server's JSON extractors and CSRF checks see the same thing.
    headers["Content-Type"] = "application/json";
  }
  if (options.signal) init.signal = options.signal;

  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (cause) {
    if (cause instanceof DOMException && cause.name === "AbortError") throw cause;
    throw new ApiError(0, "network_error", "Could not reach the server. Check your connection and try again.");
  }
  if (!response.ok) throw await errorFromResponse(response);
  return (await readJson(response)) as T;
}

/**
 * `fetch` on this origin for bodies that are not JSON (file contents, event streams), with the
 * same error handling as `request()`: a non-2xx answer becomes an `ApiError`.
 */
export async function fetchRaw(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...init });
  } catch (cause) {
    if (cause instanceof DOMException && cause.name === "AbortError") throw cause;
    throw new ApiError(0, "network_error", "Could not reach the server. Check your connection and try again.");
  }
  if (!response.ok) throw await errorFromResponse(response);
  return response;
}

export const get = <T>(path: string, options?: Omit<RequestOptions, "body">) => request<T>("GET", path, options);
export const post = <T>(path: string, body?: unknown, options?: Omit<RequestOptions, "body">) =>
  request<T>("POST", path, { ...options, body });

export const auth = {
  signup: (body: SignupRequest) => post<AuthResponse>("/api/v1/auth/signup", body),
  login: (body: LoginRequest) => post<AuthResponse>("/api/v1/auth/login", body),
  logout: () => post<void>("/api/v1/auth/logout"),
  me: (signal?: AbortSignal) => get<User>("/api/v1/auth/me", signal ? { signal } : {}),
  providers: () => get<Providers>("/api/v1/auth/providers"),
  /** Full-page navigation target (not fetched): starts the GitHub OAuth flow. */
  githubUrl: "/api/v1/auth/github",
};

/** Mirrors the server's rules so the browser can explain a bad value before sending it. */
export const rules = {
  username: {
    minLength: 3,
    maxLength: 32,
    // HTML `pattern` syntax (anchored implicitly, compiled with the `v` flag: `-` escaped).
    pattern: "[A-Za-z0-9][A-Za-z0-9_\\-]{2,31}",
    hint: "3–32 letters, digits, _ or -, starting with a letter or digit.",
  },
  password: {
    minLength: 8,
    maxLength: 128,
    hint: "8–128 characters.",
  },
} as const;
