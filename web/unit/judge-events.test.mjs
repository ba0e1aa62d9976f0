// The judge's server-sent events (src/workspace/judgeEvents.ts), without a browser; the SSE
// parsing itself is tested in sse.test.mjs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readJudgeStream, toJudgeEvent } from "../unit-build/workspace/judgeEvents.js";

describe("judge events", () => {
  it("types the judge's events and drops unknown or malformed ones", () => {
    assert.deepEqual(toJudgeEvent({ event: "check_finished", data: '{"index":1,"code":"tests","status":"failed","elapsed_ms":12.5}' }), {
      type: "check_finished",
      index: 1,
      code: "tests",
      status: "failed",
      elapsed_ms: 12.5,
    });
    assert.deepEqual(toJudgeEvent({ event: "error", data: '{"error":{"code":"judge_busy","message":"wait"}}' }), {
      type: "error",
      code: "judge_busy",
      message: "wait",
    });
    assert.equal(toJudgeEvent({ event: "started", data: "not json" }), null);
    assert.equal(toJudgeEvent({ event: "mystery", data: "{}" }), null);
    const attempt = toJudgeEvent({ event: "attempt", data: '{"id":"a1","passed":true,"failures":[]}' });
    assert.equal(attempt?.type, "attempt");
    assert.equal(attempt?.attempt.passed, true);
  });

  it("types a check's output line and drops a malformed one", () => {
    assert.deepEqual(
      toJudgeEvent({ event: "check_output", data: '{"event":"check_output","index":2,"code":"image","line":"STEP 2/5: COPY . ."}' }),
      { type: "check_output", index: 2, code: "image", line: "STEP 2/5: COPY . ." },
    );
    // An empty line is a line (a blank in the build log).
    assert.deepEqual(toJudgeEvent({ event: "check_output", data: '{"index":0,"code":"image","line":""}' }), {
      type: "check_output",
      index: 0,
      code: "image",
      line: "",
    });
    // Without its text or its check, or with a broken body, it is dropped rather than shown.
    assert.equal(toJudgeEvent({ event: "check_output", data: '{"index":2,"code":"image"}' }), null);
    assert.equal(toJudgeEvent({ event: "check_output", data: '{"index":2,"code":"image","line":42}' }), null);
    assert.equal(toJudgeEvent({ event: "check_output", data: '{"index":"2","code":"image","line":"x"}' }), null);
    assert.equal(toJudgeEvent({ event: "check_output", data: '{"index":-1,"code":"image","line":"x"}' }), null);
    assert.equal(toJudgeEvent({ event: "check_output", data: '{"index":1.5,"code":"image","line":"x"}' }), null);
    assert.equal(toJudgeEvent({ event: "check_output", data: '{"index":2,"line":"STEP 1' }), null);
    assert.equal(toJudgeEvent({ event: "check_output", data: '["STEP 1/5"]' }), null);
  });

  it("reads a whole response body, UTF-8 split across chunks included", async () => {
    const bytes = new TextEncoder().encode('event: error\ndata: {"error":{"code":"x","message":"caf\u00e9 \u2713"}}\n\n');
    const cut = bytes.indexOf(0xc3) + 1; // inside the two bytes of "é"
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(bytes.slice(0, cut));
        controller.enqueue(bytes.slice(cut));
        controller.close();
      },
    });
    const seen = [];
    await readJudgeStream(body, (e) => seen.push(e));
    assert.deepEqual(seen, [{ type: "error", code: "x", message: "caf\u00e9 \u2713" }]);
  });
});
