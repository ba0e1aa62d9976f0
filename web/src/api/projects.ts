// Projects (`/api/v1/projects`): a user's named set of files kept by the server, which agent
// jobs work on. Their files answer the same routes as a session's (`filesAt`).
import { get, post, request } from "../api";
import { filesAt } from "./files";

export interface Project {
  id: string;
  name: string;
  description: string;
  /** What it started from: `empty`, `python`, `web`. */
  template: string;
  /** How many files, and their bytes. */
  files: number;
  bytes: number;
  created_at: string;
  updated_at: string;
}

export type Template = "empty" | "python" | "web";

export interface CreateProjectRequest {
  /** 1–100 characters, unique among the user's projects ignoring case (409 `conflict`). */
  name: string;
  description?: string;
  template?: Template;
}

export interface UpdateProjectRequest {
  name?: string;
  description?: string;
}

export const templates: { value: Template; label: string }[] = [
  { value: "empty", label: "Empty" },
  { value: "python", label: "Python: a module and its unittest tests" },
  { value: "web", label: "Web: a static page" },
];

export const projectRules = {
  name: { maxLength: 100 },
  description: { maxLength: 2000 },
} as const;

const path = (id: string) => `/api/v1/projects/${encodeURIComponent(id)}`;

export const projects = {
  /** Newest first. */
  list: (signal?: AbortSignal) => get<{ projects: Project[] }>("/api/v1/projects", signal ? { signal } : {}),
  /** 409 `conflict` for a name taken, 409 `project_limit` beyond `projects.max_per_user`. */
  create: (body: CreateProjectRequest) => post<Project>("/api/v1/projects", body),
  get: (id: string, signal?: AbortSignal) => get<Project>(path(id), signal ? { signal } : {}),
  update: (id: string, body: UpdateProjectRequest) => request<Project>("PATCH", path(id), { body }),
  /** Deletes the project with its files. */
  remove: (id: string) => request<void>("DELETE", path(id)),
};

/** A project's files (list with versions, read with its ETag, write with `If-Match`, delete, move). */
export const projectFiles = (id: string) => filesAt(path(id));
