// Server-sent events parsing (src/sse.ts), shared by the judge and the job event stream.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SseParser, readSse } from "../unit-build/sse.js";
import { body } from "./streams.mjs";


describe("SSE parser", () => {
  it("parses events split anywhere, with every line ending, comments and multi-line data", () => {
    const text = ': keep-alive\r\nevent: started\r\ndata: {"step":"one","checks":2}\r\n\r\n' + "event: note\ndata: a\ndata: b\n\n" + "event: x\rdata: y\r\r";
    for (const size of [1, 2, 3, 7, text.length]) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < text.length; i += size) events.push(...parser.push(text.slice(i, i + size)));
      events.push(...parser.end());
      assert.deepEqual(
        events,
        [
          { event: "started", data: '{"step":"one","checks":2}', id: "" },
          { event: "note", data: "a\nb", id: "" },
          { event: "x", data: "y", id: "" },
        ],
        `chunks of ${size}`,
      );
    }
  });

  it("carries the last id over to later events, as EventSource does", () => {
    const parser = new SseParser();
    const events = parser.push("id: 7\nevent: state\ndata: a\n\ndata: b\n\nid:8\ndata: c\n\nid: bad\0id\ndata: d\n\n");
    assert.deepEqual(
      events.map((e) => [e.id, e.data]),
      [
        ["7", "a"],
        ["7", "b"],
        ["8", "c"],
        ["8", "d"],
      ],
    );
    assert.equal(events[1].event, "message", "an event without `event:` is a message");
  });

  it("counts a last event without its blank line at the end of the stream, and none without data", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push("event: lonely\n\nid: 3\nevent: last\ndata: x"), []);
    assert.deepEqual(parser.end(), [{ event: "last", data: "x", id: "3" }]);
  });

  it("reads a body to the end, UTF-8 split across chunks included, and passes reading errors on", async () => {
    const bytes = new TextEncoder().encode("id: 1\ndata: caf\u00e9 \u2713\n\n");
    const cut = bytes.indexOf(0xc3) + 1; // inside the two bytes of "é"
    const seen = [];
    await readSse(body([bytes.slice(0, cut), bytes.slice(cut)]), (e) => seen.push(e));
    assert.deepEqual(seen, [{ event: "message", data: "caf\u00e9 \u2713", id: "1" }]);

    const dropped = [];
    await assert.rejects(
      readSse(body(["data: one\n\n", "data: tw"], new TypeError("network error")), (e) => dropped.push(e.data)),
      /network error/,
    );
    assert.deepEqual(dropped, ["one"], "events before the drop are delivered, the half one is not");
  });

  it("stops reading when the callback throws", async () => {
    let pulled = 0;
    let cancelled = false;
    const stream = new ReadableStream({
      pull(controller) {
        pulled += 1;
        controller.enqueue(new TextEncoder().encode(`data: ${pulled}\n\n`));
      },
      cancel() {
        cancelled = true;
      },
    });
    await assert.rejects(
      readSse(stream, (e) => {
        if (e.data === "2") throw new Error("enough");
      }),
      /enough/,
    );
    assert.ok(cancelled, "the stream is cancelled");
    assert.ok(pulled <= 3, `pulled ${pulled} chunks`);
  });
});
