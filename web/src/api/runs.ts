// Stateless runs (`POST /api/v1/runs`) and the runtimes they can use.
import { get, post } from "../api";

export interface Runtime {
  name: string;
  version: string;
  aliases: string[];
  compiled: boolean;
}

export interface RunFile {
  name: string;
  content: string;
  encoding?: "utf8" | "base64";
}

export interface RunLimits {
  wall_ms?: number;
  cpu_ms?: number;
  memory_mb?: number;
  processes?: number;
  output_bytes?: number;
  file_size_bytes?: number;
}

export interface TestCase {
  stdin: string;
  expected_stdout?: string;
}

export interface RunRequest {
  runtime: string;
  /** The first file is the main one. */
  files: RunFile[];
  stdin?: string;
  args?: string[];
  limits?: RunLimits;
  tests?: TestCase[];
}

export type StageStatus =
  | "ok"
  | "runtime_error"
  | "compile_error"
  | "time_limit"
  | "memory_limit"
  | "output_limit"
  | "killed"
  | "internal_error"
  | (string & {});

export interface Stage {
  status: StageStatus;
  exit_code: number | null;
  signal: number | null;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  wall_ms: number;
  cpu_ms: number;
  memory_kb: number;
}

export interface TestResult extends Stage {
  /** Absent (null) when the case had no expected output. */
  passed?: boolean | null;
}

export interface RunResult {
  id: string;
  state: "pending" | "done";
  runtime: string;
  compile?: Stage;
  run?: Stage;
  tests?: TestResult[];
}

export const runs = {
  runtimes: (signal?: AbortSignal) => get<{ runtimes: Runtime[] }>("/api/v1/runtimes", signal ? { signal } : {}),
  create: (body: RunRequest, signal?: AbortSignal) => post<RunResult>("/api/v1/runs", body, signal ? { signal } : {}),
};

/** People's words for a stage status. */
export const statusLabels: Record<string, string> = {
  ok: "OK",
  runtime_error: "Runtime error",
  compile_error: "Compile error",
  time_limit: "Time limit exceeded",
  memory_limit: "Memory limit exceeded",
  output_limit: "Output limit exceeded",
  killed: "Killed",
  internal_error: "Internal error",
};
