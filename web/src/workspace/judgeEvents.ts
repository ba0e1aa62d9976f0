// The judge's server-sent events (a POST stream, so no EventSource), typed. The SSE parsing
// itself is `src/sse.ts`, shared with the job event stream.
import { readSse, type SseEvent } from "../sse.js";

export type JudgeEvent =
  | { type: "started"; step: string; checks: number }
  | { type: "check_started"; index: number; code: string; kind: string }
  | { type: "check_finished"; index: number; code: string; status: string; elapsed_ms: number }
  /** One line of a running check's progress (an `image` check's build and run), as plain text. */
  | { type: "check_output"; index: number; code: string; line: string }
  | { type: "attempt"; attempt: import("../api/labs").Attempt }
  | { type: "error"; code: string; message: string };

/** Turns one SSE event into a typed judge event; unknown or malformed events are `null`. */
export function toJudgeEvent(e: SseEvent): JudgeEvent | null {
  let data: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(e.data);
    if (typeof parsed !== "object" || parsed === null) return null;
    data = parsed as Record<string, unknown>;
  } catch {
    return null;
  }
  const n = (k: string) => (typeof data[k] === "number" ? (data[k] as number) : 0);
  const s = (k: string) => (typeof data[k] === "string" ? (data[k] as string) : "");
  switch (e.event) {
    case "started":
      return { type: "started", step: s("step"), checks: n("checks") };
    case "check_started":
      return { type: "check_started", index: n("index"), code: s("code"), kind: s("kind") };
    case "check_finished":
      return { type: "check_finished", index: n("index"), code: s("code"), status: s("status"), elapsed_ms: n("elapsed_ms") };
    case "check_output":
      // Strict: a line without its check or its text is dropped, not shown as an empty line.
      if (!Number.isInteger(data.index) || (data.index as number) < 0 || typeof data.line !== "string") return null;
      return { type: "check_output", index: data.index as number, code: s("code"), line: data.line };
    case "attempt":
      return { type: "attempt", attempt: data as unknown as import("../api/labs").Attempt };
    case "error": {
      const err = (data.error ?? data) as Record<string, unknown>;
      return {
        type: "error",
        code: typeof err.code === "string" ? err.code : "error",
        message: typeof err.message === "string" ? err.message : "The check failed to run.",
      };
    }
    default:
      return null;
  }
}

/** Reads a judge response body to the end, calling `onEvent` for each event as it arrives. */
export async function readJudgeStream(body: ReadableStream<Uint8Array>, onEvent: (e: JudgeEvent) => void): Promise<void> {
  await readSse(body, (e) => {
    const j = toJudgeEvent(e);
    if (j) onEvent(j);
  });
}
