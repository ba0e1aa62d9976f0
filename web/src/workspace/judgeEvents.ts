// Server-sent events parsing for the judge's stream (a POST, so no EventSource): feed text
// chunks in, get whole events out. Follows the SSE rules that matter here: `event:` and
// `data:` fields (several data lines join with "\n"), comments (`:`) ignored, a blank line ends
// an event, and any of \n, \r\n or \r ends a line.

export interface SseEvent {
  event: string;
  data: string;
}

export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];

  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line, out);
    }
    return out;
  }

  /** At the end of the stream: an event without its final blank line still counts. */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.buffer !== "") this.line(this.buffer, out);
    this.buffer = "";
    this.line("", out);
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === "") {
      if (this.data.length > 0) out.push({ event: this.event || "message", data: this.data.join("\n") });
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
  }
}

export type JudgeEvent =
  | { type: "started"; step: string; checks: number }
  | { type: "check_started"; index: number; code: string; kind: string }
  | { type: "check_finished"; index: number; code: string; status: string; elapsed_ms: number }
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
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    const events = done ? parser.push(decoder.decode()).concat(parser.end()) : parser.push(decoder.decode(value, { stream: true }));
    for (const e of events) {
      const j = toJudgeEvent(e);
      if (j) onEvent(j);
    }
    if (done) return;
  }
}
