// An app's log stream (`GET /api/v1/apps/{id}/logs?follow=true`), without the DOM: typing its
// `line` events, keeping the newest lines up to a cap, and following it for as long as the page
// is open. The stream has no end of its own (the app may log at any time), so every end or
// drop reconnects with `Last-Event-ID` after a back-off; only a 4xx (the app is gone) or the
// page leaving stops it.
import type { LogLine } from "../api/apps";
import { retryableByDefault, sleep } from "../projects/jobEvents.js";
import { readSse, type SseEvent } from "../sse.js";
import { backoffMs } from "../workspace/terminalSocket.js";

/** Lines kept in the page: a chatty app must not grow the DOM without end. */
export const MAX_SHOWN_LINES = 500;

/** One `line` event, typed; anything else, or a malformed one, is `null`. */
export function toLogLine(e: SseEvent): LogLine | null {
  if (e.event !== "line") return null;
  let line: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(e.data);
    if (typeof parsed !== "object" || parsed === null) return null;
    line = parsed as Record<string, unknown>;
  } catch {
    return null;
  }
  const { seq, at, stream, text } = line;
  if (typeof seq !== "number" || !Number.isInteger(seq) || seq < 1 || typeof stream !== "string" || typeof text !== "string") return null;
  return { seq, at: typeof at === "string" ? at : "", stream, text };
}

export interface Kept {
  lines: LogLine[];
  /** Lines that were shown and have since been let go. */
  cut: number;
}

/** Adds `line` after those kept (unless already there), keeping at most `cap`. */
export function keep(kept: Kept, line: LogLine, cap = MAX_SHOWN_LINES): Kept {
  const last = kept.lines.at(-1);
  if (last && line.seq <= last.seq) return kept;
  const lines = [...kept.lines, line];
  const over = Math.max(0, lines.length - cap);
  return over === 0 ? { lines, cut: kept.cut } : { lines: lines.slice(over), cut: kept.cut + over };
}

export interface FollowLogsOptions {
  /** Opens the stream after line `after` (0: the last lines first). */
  open: (after: number, signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>;
  after?: number;
  signal: AbortSignal;
  /** Each new line, in order, once. */
  onLine: (line: LogLine) => void;
  /** The stream is open (again). */
  onOpen?: () => void;
  /** Before waiting to reconnect: the consecutive failure (0-based), the wait and the cause. */
  onRetry?: (failure: number, delayMs: number, cause: unknown) => void;
  retryable?: (error: unknown) => boolean;
  delay?: (failure: number) => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Thrown through the reader when `onLine` throws, so that error is not taken for a drop. */
const STOP = Symbol("stop");

/**
 * Follows the log until aborted (rejects with the signal's reason), a refused connection
 * (`retryable` false: rejects with it), or an exception from `onLine` (rejects with it).
 */
export async function followLogs(options: FollowLogsOptions): Promise<never> {
  const { open, signal, onLine } = options;
  const retryable = options.retryable ?? retryableByDefault;
  const delay = options.delay ?? ((n: number) => backoffMs(n));
  const wait = options.sleep ?? sleep;
  let last = options.after ?? 0;
  let failures = 0;
  for (;;) {
    let cause: unknown = null;
    let thrown: { error: unknown } | null = null;
    try {
      const body = await open(last, signal);
      options.onOpen?.();
      await readSse(body, (e) => {
        const line = toLogLine(e);
        if (!line || line.seq <= last) return;
        last = line.seq;
        failures = 0;
        try {
          onLine(line);
        } catch (error) {
          thrown = { error };
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
    const ms = delay(failures);
    options.onRetry?.(failures, ms, cause);
    failures += 1;
    await wait(ms, signal);
  }
}
