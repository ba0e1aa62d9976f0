// A job's event stream (`GET /api/v1/jobs/{id}/events`), without the DOM: typing its events,
// folding them into what the page shows (`applyJobEvent`), and following the stream to the
// job's end across dropped connections (`followJob`), resuming after the last event seen.
//
// `fetch` streaming rather than EventSource: EventSource reconnects by itself, but also after
// the server ends the stream on purpose (the job is over), cannot tell a 404 from a network
// failure, and cannot be driven in a unit test. Here the driver sees each case: a final state
// ends it, a clean end with nothing new ends it, a 4xx is thrown, anything else reconnects with
// `Last-Event-ID` after a back-off (0.5 s doubling to 10 s, the terminal's).
import type { Job, JobError, JobState } from "../api/jobs";
import { readSse, type SseEvent } from "../sse.js";
import { backoffMs } from "../workspace/terminalSocket.js";

interface Base {
  /** The event's place in the job's stream (its SSE `id`). */
  seq: number;
  at: string;
}

export type JobStreamEvent =
  | (Base & {
      type: "state";
      state: JobState;
      attempt: number | null;
      error: JobError | null;
      retryAt: string | null;
      cancelRequested: boolean;
    })
  | (Base & { type: "progress"; percent: number; message: string | null })
  | (Base & { type: "log"; line: string })
  | (Base & { type: "result"; result: unknown });

const FINISHED = new Set(["completed", "failed", "cancelled"]);

export function isFinished(state: string): boolean {
  return FINISHED.has(state);
}

function asError(value: unknown): JobError | null {
  if (typeof value !== "object" || value === null) return null;
  const { code, message } = value as Record<string, unknown>;
  return typeof code === "string" ? { code, message: typeof message === "string" ? message : "" } : null;
}

/** One SSE event of the stream, typed; unknown or malformed ones are `null`. */
export function toJobEvent(e: SseEvent): JobStreamEvent | null {
  let view: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(e.data);
    if (typeof parsed !== "object" || parsed === null) return null;
    view = parsed as Record<string, unknown>;
  } catch {
    return null;
  }
  const seq = view.seq;
  const data = view.data;
  if (typeof seq !== "number" || !Number.isInteger(seq) || seq < 1 || typeof data !== "object" || data === null) return null;
  const d = data as Record<string, unknown>;
  const base = { seq, at: typeof view.at === "string" ? view.at : "" };
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  switch (e.event) {
    case "state":
      if (typeof d.state !== "string") return null;
      return {
        ...base,
        type: "state",
        state: d.state,
        attempt: typeof d.attempt === "number" ? d.attempt : null,
        error: asError(d.error),
        retryAt: str(d.retry_at),
        cancelRequested: d.cancel_requested === true,
      };
    case "progress":
      return {
        ...base,
        type: "progress",
        percent: typeof d.percent === "number" ? Math.max(0, Math.min(100, d.percent)) : 0,
        message: str(d.message),
      };
    case "log":
      return typeof d.line === "string" ? { ...base, type: "log", line: d.line } : null;
    case "result":
      return { ...base, type: "result", result: d.result ?? null };
    default:
      return null;
  }
}

/** What the page shows of a job while it runs. */
export interface LiveJob {
  state: JobState;
  percent: number;
  message: string | null;
  /** The last `MAX_LOG_LINES` log lines. */
  log: string[];
  result: unknown;
  error: JobError | null;
  /** The attempt running (or last run), when the stream said. */
  attempt: number | null;
  /** Queued again after a failed attempt: not before this. */
  retryAt: string | null;
  cancelRequested: boolean;
  /** The last event folded in (0: none). */
  seq: number;
}

export const MAX_LOG_LINES = 200;

export function liveFromJob(job: Job): LiveJob {
  return {
    state: job.state,
    percent: job.progress,
    message: job.progress_message,
    log: [],
    result: job.result ?? null,
    error: job.error,
    attempt: job.attempts > 0 ? job.attempts : null,
    retryAt: job.state === "queued" && job.error ? job.run_at : null,
    cancelRequested: job.cancel_requested,
    seq: 0,
  };
}

/** Folds one event in; an event already seen (a replay after resuming) changes nothing. */
export function applyJobEvent(live: LiveJob, e: JobStreamEvent): LiveJob {
  if (e.seq <= live.seq) return live;
  const next = { ...live, seq: e.seq };
  switch (e.type) {
    case "state":
      next.state = e.state;
      if (e.attempt !== null) next.attempt = e.attempt;
      // A failed attempt's error stays shown while the job retries; success clears it.
      next.error = e.error ?? (e.state === "completed" ? null : live.error);
      next.retryAt = e.state === "queued" ? e.retryAt : null;
      next.cancelRequested = live.cancelRequested || e.cancelRequested;
      return next;
    case "progress":
      next.percent = e.percent;
      next.message = e.message;
      return next;
    case "log":
      next.log = [...live.log, e.line].slice(-MAX_LOG_LINES);
      return next;
    case "result":
      next.result = e.result;
      return next;
  }
}

export interface FollowOptions {
  /** Opens the stream after event `after` (0: from the first); throws when it cannot. */
  open: (after: number, signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>;
  /** The last event already seen. */
  after?: number;
  signal: AbortSignal;
  /** Each new event, in order, once. */
  onEvent: (e: JobStreamEvent) => void;
  /** Before waiting to reconnect: the consecutive failure (0-based), the wait and the cause. */
  onRetry?: (failure: number, delayMs: number, cause: unknown) => void;
  /** Whether an error is worth another connection; default: all but HTTP 4xx (429 retries). */
  retryable?: (error: unknown) => boolean;
  delay?: (failure: number) => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface FollowEnd {
  /** A final state came (`completed`, `failed`, `cancelled`); else the server had nothing more. */
  finished: boolean;
  /** The last event seen. */
  last: number;
}

/** An error with an HTTP `status` (an `ApiError`) of 4xx but 429 is the client's to fix. */
export function retryableByDefault(error: unknown): boolean {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status !== "number" || status === 0 || status === 429 || status >= 500;
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The server's `error` event (it could not read the job's events): the stream ends after it. */
export class StreamError extends Error {
  constructor(data: string) {
    let message = "the event stream failed";
    try {
      const parsed = JSON.parse(data) as { error?: { message?: unknown } };
      if (typeof parsed.error?.message === "string") message = parsed.error.message;
    } catch {
      // Not JSON: the generic message.
    }
    super(message);
    this.name = "StreamError";
  }
}

/** Thrown through the reader to stop at a final state. */
const STOP = Symbol("stop");

/**
 * Follows a job's events until its final state. Resolves at the end; rejects when aborted
 * (with the signal's reason), on an error `retryable` refuses, or with what `onEvent` threw.
 */
export async function followJob(options: FollowOptions): Promise<FollowEnd> {
  const { open, signal, onEvent } = options;
  const retryable = options.retryable ?? retryableByDefault;
  const delay = options.delay ?? ((n: number) => backoffMs(n));
  const wait = options.sleep ?? sleep;
  let last = options.after ?? 0;
  let failures = 0;
  for (;;) {
    let fresh = 0;
    let finished = false;
    let cause: unknown = null;
    let thrown: { error: unknown } | null = null;
    try {
      const body = await open(last, signal);
      await readSse(body, (sse) => {
        if (sse.event === "error") {
          cause = new StreamError(sse.data);
          return;
        }
        const e = toJobEvent(sse);
        if (!e || e.seq <= last) return;
        last = e.seq;
        fresh += 1;
        failures = 0;
        try {
          onEvent(e);
        } catch (error) {
          thrown = { error };
          throw STOP;
        }
        if (e.type === "state" && isFinished(e.state)) {
          finished = true;
          throw STOP;
        }
      });
    } catch (error) {
      if (error !== STOP) {
        if (signal.aborted || !retryable(error)) throw error;
        cause = error;
      }
    }
    if (thrown) throw (thrown as { error: unknown }).error;
    if (finished) return { finished: true, last };
    // Ended cleanly with nothing new: the server has no more to send (the job is gone, or was
    // over before `after`).
    if (cause === null && fresh === 0) return { finished: false, last };
    const ms = delay(failures);
    options.onRetry?.(failures, ms, cause);
    failures += 1;
    await wait(ms, signal);
  }
}
