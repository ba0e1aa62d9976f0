// Jobs (`/api/v1/jobs`): durable background work — here the agent jobs on a project
// (`POST /api/v1/projects/{id}/jobs`), their state, cancelling, accepting a code job's change
// set, and the event stream (followed by `src/projects/jobEvents.ts`).
import { ApiError, fetchRaw, get, post } from "../api";
import type { Project } from "./projects";

export type JobState = "queued" | "running" | "completed" | "failed" | "cancelled" | (string & {});

export type AgentKind = "research" | "wireframe" | "code" | "qa" | "pedagogy";

export interface JobError {
  /** Stable: `llm_not_configured`, `llm_timeout`, `llm_invalid_output`, `no_tests`, `lease_expired` … */
  code: string;
  message: string;
}

export interface Job {
  id: string;
  kind: string;
  project_id: string | null;
  state: JobState;
  /** 0–100, with what the job is doing. */
  progress: number;
  progress_message: string | null;
  attempts: number;
  max_attempts: number;
  cancel_requested: boolean;
  /** Set when completed; for an agent job an `AgentResult`. */
  result: unknown;
  /** The last failed attempt's error (also while queued for a retry). */
  error: JobError | null;
  created_at: string;
  run_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface AgentInput {
  /** What the job is to do (optional for `qa`); at most 20 000 characters. */
  prompt: string;
  /** `code`: apply the change set at once instead of proposing it. */
  apply?: boolean;
  /** `qa`: the test command as argv (never through a shell). */
  command?: string[];
}

export interface ResearchOutput {
  summary: string;
  findings: { title: string; detail: string; sources: string[] }[];
  open_questions: string[];
}

export interface WireframeOutput {
  screens: { name: string; purpose: string; elements: { kind: string; label: string; notes?: string | null }[] }[];
  flow: string[];
}

export interface Change {
  path: string;
  action: "write" | "delete";
  /** The whole new file, for `write`. */
  content?: string;
  /** The version the change was made against (hex SHA-256); absent: the file did not exist. */
  base_sha256?: string;
}

export interface CodeOutput {
  summary: string;
  changes: Change[];
}

export interface QaOutput {
  verdict: "pass" | "fail";
  summary: string;
  failures: { test: string; problem: string; suggestion: string }[];
}

export interface PedagogyOutput {
  objectives: string[];
  steps: { title: string; explanation: string; exercise: string }[];
  quiz: { question: string; answer: string }[];
}

/** A qa job's test run (`result.tests`). */
export interface TestRun {
  command: string[];
  passed: boolean;
  status: string;
  exit_code: number | null;
  stdout: string;
  stderr: string;
  wall_ms: number;
}

export interface AgentResult<Output = unknown> {
  kind: AgentKind;
  provider: string;
  model: string;
  output: Output;
  /** `code`: the change set was applied by the job itself (`apply: true`). */
  applied?: boolean;
  tests?: TestRun;
}

export interface Accepted {
  /** The paths written or deleted. */
  changed: string[];
  /** Accepted before: nothing was written. */
  already: boolean;
  project: Project;
}

export interface JobFilter {
  project?: string;
  state?: JobState;
  kind?: string;
  limit?: number;
}

export const agentKinds: { value: AgentKind; label: string; does: string }[] = [
  { value: "research", label: "Research", does: "investigates the request: findings and open questions" },
  { value: "wireframe", label: "Wireframe", does: "sketches the app's screens and how they connect" },
  { value: "code", label: "Code", does: "proposes a change set for you to review and accept" },
  { value: "qa", label: "QA", does: "runs the project's tests in a sandbox and reports" },
  { value: "pedagogy", label: "Pedagogy", does: "turns the request into a lesson" },
];

const enc = encodeURIComponent;
const job = (id: string) => `/api/v1/jobs/${enc(id)}`;
const opts = (signal?: AbortSignal) => (signal ? { signal } : {});

export const jobs = {
  /** Starts an agent job (202 with the job, `queued`). */
  start: (projectId: string, kind: AgentKind, input: AgentInput) =>
    post<Job>(`/api/v1/projects/${enc(projectId)}/jobs`, { kind, input }),
  /** The caller's jobs, newest first: of one project, state or kind; `limit` 1–500 (default 50). */
  list: (filter: JobFilter = {}, signal?: AbortSignal) => {
    const query = new URLSearchParams();
    if (filter.project) query.set("project", filter.project);
    if (filter.state) query.set("state", filter.state);
    if (filter.kind) query.set("kind", filter.kind);
    if (filter.limit) query.set("limit", String(filter.limit));
    const q = query.toString();
    return get<{ jobs: Job[] }>(`/api/v1/jobs${q ? `?${q}` : ""}`, opts(signal));
  },
  get: (id: string, signal?: AbortSignal) => get<Job>(job(id), opts(signal)),
  /** 409 `job_finished` when it had ended. */
  cancel: (id: string) => post<Job>(`${job(id)}/cancel`, {}),
  /** Applies a completed code job's change set; 409 `change_set_stale` names the files changed since. */
  accept: (id: string) => post<Accepted>(`${job(id)}/accept`, {}),
  /** Opens the job's event stream after event `after` (`Last-Event-ID`); the caller reads the body. */
  events: async (id: string, after: number, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> => {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (after > 0) headers["Last-Event-ID"] = String(after);
    const response = await fetchRaw(`${job(id)}/events`, { headers, signal, cache: "no-store" });
    if (!response.body) throw new ApiError(0, "no_body", "The server sent no events.");
    return response.body;
  },
};

/** People's words for a failed job's `error.code`; the server's message says the details. */
export const jobErrorLabels: Record<string, string> = {
  llm_not_configured: "No language model is configured for this kind of job",
  llm_timeout: "The language model did not answer in time",
  llm_unavailable: "The language model could not be reached",
  llm_invalid_output: "The language model's answer could not be used",
  invalid_input: "The job's input could not be used",
  no_tests: "The project has no tests this job knows how to run",
  project_not_found: "The project was deleted",
  lease_expired: "The server running the job stopped",
  timeout: "The job took too long",
};
