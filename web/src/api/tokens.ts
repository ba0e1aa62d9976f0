// Personal API tokens (`/api/v1/tokens`): scripts and CLIs send them as `Authorization: Bearer`.
import { post, request, get } from "../api";

export interface ApiToken {
  id: string;
  name: string;
  /** The token's first characters, to tell tokens apart. */
  prefix: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
}

export interface CreateTokenRequest {
  /** 1–64 characters. */
  name: string;
  /** 1–3650; omitted: never expires. */
  expires_in_days?: number;
}

export interface CreatedToken {
  token: ApiToken;
  /** Shown this once: the server keeps only its hash. */
  secret: string;
}

export const tokens = {
  list: (signal?: AbortSignal) => get<{ tokens: ApiToken[] }>("/api/v1/tokens", signal ? { signal } : {}),
  create: (body: CreateTokenRequest) => post<CreatedToken>("/api/v1/tokens", body),
  revoke: (id: string) => request<void>("DELETE", `/api/v1/tokens/${encodeURIComponent(id)}`),
};

export const tokenRules = {
  name: { maxLength: 64 },
  expiresInDays: { min: 1, max: 3650 },
} as const;
