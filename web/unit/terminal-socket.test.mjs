// The terminal protocol's pure parts (src/workspace/terminalSocket.ts), without a browser.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AckCounter,
  MAX_INPUT_FRAME,
  ackMessage,
  backoffMs,
  isFinalClose,
  parseServerMessage,
  resizeMessage,
  splitInput,
} from "../unit-build/workspace/terminalSocket.js";

describe("terminal protocol", () => {
  it("parses the server's control messages and ignores anything else", () => {
    assert.deepEqual(parseServerMessage('{"type":"hello","rows":24,"cols":80,"read_only":true,"window":262144}'), {
      type: "hello",
      rows: 24,
      cols: 80,
      window: 262144,
      read_only: true,
    });
    assert.deepEqual(parseServerMessage('{"type":"exit","code":null,"signal":9}'), { type: "exit", code: null, signal: 9 });
    assert.deepEqual(parseServerMessage('{"type":"error","code":"ended"}'), {
      type: "error",
      code: "ended",
      message: "The terminal reported an error.",
    });
    for (const junk of ["", "not json", "null", "42", '{"type":"hello","rows":"24"}', '{"type":"surprise"}']) {
      assert.equal(parseServerMessage(junk), null, junk);
    }
  });

  it("encodes resize (clamped to 1..500) and acks", () => {
    assert.deepEqual(JSON.parse(resizeMessage(0, 9999.7)), { type: "resize", rows: 1, cols: 500 });
    assert.deepEqual(JSON.parse(resizeMessage(30.9, 100)), { type: "resize", rows: 30, cols: 100 });
    assert.deepEqual(JSON.parse(ackMessage(1234)), { type: "ack", bytes: 1234 });
  });

  it("splits large input into frames of at most 64 KiB, losing nothing", () => {
    const input = new Uint8Array(MAX_INPUT_FRAME * 2 + 5).map((_, i) => i % 251);
    const frames = splitInput(input);
    assert.deepEqual(frames.map((f) => f.length), [MAX_INPUT_FRAME, MAX_INPUT_FRAME, 5]);
    assert.deepEqual(Buffer.concat(frames), Buffer.from(input));
    assert.deepEqual(splitInput(new Uint8Array(0)), []);
  });

  it("acknowledges at the threshold, the rest when asked, and forgets an old window", () => {
    const acks = new AckCounter(100);
    assert.equal(acks.consumed(60), 0);
    assert.equal(acks.consumed(60), 120);
    assert.equal(acks.consumed(30), 0);
    assert.equal(acks.take(), 30);
    assert.equal(acks.take(), 0);
    acks.consumed(50);
    acks.reset();
    assert.equal(acks.take(), 0, "bytes of a closed connection are never acknowledged");
  });

  it("backs off from 0.5 s doubling to 10 s, with ±20 % jitter", () => {
    const mid = () => 0.5;
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 30].map((n) => backoffMs(n, mid)), [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
    assert.equal(backoffMs(0, () => 0), 400);
    assert.equal(backoffMs(0, () => 1), 600);
  });

  it("stops reconnecting only when the shell is over or the client misbehaved", () => {
    assert.equal(isFinalClose(1006, false, null), false, "a dropped connection is retried");
    assert.equal(isFinalClose(1000, true, null), true, "the shell exited");
    assert.equal(isFinalClose(1011, false, "ended"), true, "the session ended");
    assert.equal(isFinalClose(1008, false, null), true);
    assert.equal(isFinalClose(1009, false, null), true);
  });
});
