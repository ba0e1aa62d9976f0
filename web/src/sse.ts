// Server-sent events parsing for streams read with `fetch` (the judge's POST, a job's events):
// feed text chunks in, get whole events out. Follows the SSE rules that matter here: `event:`,
// `data:` (several data lines join with "\n") and `id:` fields, comments (`:`) ignored, a blank
// line ends an event, and any of \n, \r\n or \r ends a line. As in EventSource, the last `id`
// seen carries over to later events until another one is sent.

export interface SseEvent {
  event: string;
  data: string;
  /** The last event id the stream has set ("" before any). */
  id: string;
}

export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private lastId = "";

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
      if (this.data.length > 0) out.push({ event: this.event || "message", data: this.data.join("\n"), id: this.lastId });
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
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
  }
}

/**
 * Reads an event stream to its end, calling `onEvent` for each event as it arrives. Throws what
 * reading throws (a dropped connection, an abort); an exception from `onEvent` stops the read.
 */
export async function readSse(body: ReadableStream<Uint8Array>, onEvent: (e: SseEvent) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      const events = done ? parser.push(decoder.decode()).concat(parser.end()) : parser.push(decoder.decode(value, { stream: true }));
      for (const e of events) onEvent(e);
      if (done) return;
    }
  } finally {
    // Stopped early (an exception): let the connection go.
    reader.cancel().catch(() => undefined);
  }
}
