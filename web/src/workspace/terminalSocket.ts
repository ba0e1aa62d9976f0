// The pure part of the terminal protocol (docs/terminal-protocol.md): parsing the server's
// control messages, encoding the client's, flow-control accounting and reconnect back-off.
// No DOM, no WebSocket: Terminal.tsx is the thin driver that does the I/O.

export type ServerMessage =
  | { type: "hello"; rows: number; cols: number; read_only: boolean; window: number }
  | { type: "snapshot" }
  | { type: "size"; rows: number; cols: number }
  | { type: "exit"; code: number | null; signal: number | string | null }
  | { type: "pong" }
  | { type: "error"; code: string; message: string };

/** Parses a text frame; anything that is not a known message is `null` (ignored by the driver). */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const m = value as Record<string, unknown>;
  const num = (k: string) => (typeof m[k] === "number" ? (m[k] as number) : null);
  switch (m.type) {
    case "hello": {
      const rows = num("rows");
      const cols = num("cols");
      const window = num("window");
      if (rows === null || cols === null || window === null) return null;
      return { type: "hello", rows, cols, window, read_only: m.read_only === true };
    }
    case "snapshot":
      return { type: "snapshot" };
    case "size": {
      const rows = num("rows");
      const cols = num("cols");
      return rows === null || cols === null ? null : { type: "size", rows, cols };
    }
    case "exit":
      return {
        type: "exit",
        code: num("code"),
        signal: typeof m.signal === "number" || typeof m.signal === "string" ? m.signal : null,
      };
    case "pong":
      return { type: "pong" };
    case "error":
      return {
        type: "error",
        code: typeof m.code === "string" ? m.code : "error",
        message: typeof m.message === "string" ? m.message : "The terminal reported an error.",
      };
    default:
      return null;
  }
}

export const resizeMessage = (rows: number, cols: number) =>
  JSON.stringify({ type: "resize", rows: clamp(rows), cols: clamp(cols) });
export const ackMessage = (bytes: number) => JSON.stringify({ type: "ack", bytes });
export const pingMessage = () => JSON.stringify({ type: "ping" });

const clamp = (n: number) => Math.max(1, Math.min(500, Math.floor(n)));

/** Input frames are at most 64 KiB: a large paste is split (on byte boundaries, which the PTY accepts). */
export const MAX_INPUT_FRAME = 64 * 1024;
export function splitInput(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer>[] {
  const frames: Uint8Array<ArrayBuffer>[] = [];
  for (let i = 0; i < bytes.length; i += MAX_INPUT_FRAME) frames.push(bytes.subarray(i, i + MAX_INPUT_FRAME));
  return frames;
}

/**
 * Counts output bytes the emulator has consumed and says when to acknowledge them: every
 * `threshold` bytes at once, the rest by the driver's timer (at least once a second).
 */
export class AckCounter {
  private pending = 0;
  constructor(private readonly threshold = 64 * 1024) {}

  /** Records `bytes` consumed; returns the number to acknowledge now, or 0 to wait. */
  consumed(bytes: number): number {
    this.pending += bytes;
    return this.pending >= this.threshold ? this.take() : 0;
  }

  /** For the timer: everything not yet acknowledged (0 if nothing). */
  take(): number {
    const n = this.pending;
    this.pending = 0;
    return n;
  }

  /** A new connection starts a new window: bytes of the old one are never acknowledged. */
  reset(): void {
    this.pending = 0;
  }
}

/** Reconnect delay for the n-th consecutive failure (0-based): 0.5 s doubling to 10 s, ±20 % jitter. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(10_000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Whether a close means "do not reconnect": the shell exited or had already ended. */
export function isFinalClose(code: number, sawExit: boolean, errorCode: string | null): boolean {
  if (sawExit || errorCode === "ended") return true;
  // 1008/1009: our own bad message; reconnecting would repeat it.
  return code === 1008 || code === 1009;
}
