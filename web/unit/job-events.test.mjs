// A job's event stream (src/projects/jobEvents.ts): typing, folding into the page's view, and
// following it across dropped connections, without a browser or a server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyJobEvent, followJob, liveFromJob, MAX_LOG_LINES, toJobEvent } from "../unit-build/projects/jobEvents.js";
import { body } from "./streams.mjs";

/** One SSE block as the server writes it: `id` = seq, `event` = kind, `data` = the event view. */
function sse(seq, kind, data) {
  return `id: ${seq}\nevent: ${kind}\ndata: ${JSON.stringify({ seq, at: "2030-01-01T00:00:00Z", kind, data })}\n\n`;
}

const stream = [
  sse(1, "state", { state: "queued" }),
  sse(2, "state", { state: "running", attempt: 1 }),
  sse(3, "progress", { percent: 5, message: "reading the project" }),
  sse(4, "log", { line: "Ran 2 tests" }),
  sse(5, "result", { result: { kind: "qa", output: { verdict: "pass" } } }),
  sse(6, "state", { state: "completed" }),
];

const job = {
  id: "j1",
  kind: "qa",
  project_id: "p1",
  state: "queued",
  progress: 0,
  progress_message: null,
  attempts: 0,
  max_attempts: 1,
  cancel_requested: false,
  result: null,
  error: null,
  created_at: "2030-01-01T00:00:00Z",
  run_at: "2030-01-01T00:00:00Z",
  started_at: null,
  finished_at: null,
};

/** An `open` that answers the given responses in turn and records the `after` of each call. */
function opener(responses) {
  const calls = [];
  const open = async (after) => {
    calls.push(after);
    const next = responses.shift();
    assert.ok(next, `an unexpected connection (after ${after})`);
    if (next instanceof Error) throw next;
    return next();
  };
  return { open, calls };
}

const noSleep = { sleeps: [], sleep: async (ms) => void noSleep.sleeps.push(ms) };

describe("job events", () => {
  it("types each kind of event and drops malformed ones", () => {
    const parsed = stream.map((text) => {
      const [idLine, eventLine, dataLine] = text.trim().split("\n");
      return toJobEvent({ id: idLine.slice(4), event: eventLine.slice(7), data: dataLine.slice(6) });
    });
    assert.deepEqual(
      parsed.map((e) => [e.seq, e.type]),
      [
        [1, "state"],
        [2, "state"],
        [3, "progress"],
        [4, "log"],
        [5, "result"],
        [6, "state"],
      ],
    );
    assert.equal(parsed[1].attempt, 1);
    assert.deepEqual([parsed[2].percent, parsed[2].message], [5, "reading the project"]);
    assert.equal(parsed[3].line, "Ran 2 tests");
    assert.deepEqual(parsed[4].result.output, { verdict: "pass" });
    const retry = toJobEvent({
      id: "9",
      event: "state",
      data: JSON.stringify({ seq: 9, at: "", kind: "state", data: { state: "queued", error: { code: "llm_timeout", message: "slow" }, retry_at: "later" } }),
    });
    assert.deepEqual([retry.error, retry.retryAt], [{ code: "llm_timeout", message: "slow" }, "later"]);
    for (const data of ["not json", "{}", '{"seq":"1","data":{}}', '{"seq":1,"data":{"state":3}}', '{"seq":0,"data":{"state":"queued"}}']) {
      assert.equal(toJobEvent({ id: "", event: "state", data }), null, data);
    }
    assert.equal(toJobEvent({ id: "1", event: "mystery", data: '{"seq":1,"data":{}}' }), null);
    assert.equal(toJobEvent({ id: "1", event: "log", data: '{"seq":1,"data":{"line":1}}' }), null);
  });

  it("folds events into the live view once each, keeping the last log lines", () => {
    let live = liveFromJob(job);
    const events = [];
    for (const [seq, type, extra] of [
      [1, "state", { state: "running", attempt: 1, error: null, retryAt: null, cancelRequested: false }],
      [2, "progress", { percent: 40, message: "asking the language model" }],
      [3, "state", { state: "queued", attempt: null, error: { code: "llm_timeout", message: "slow" }, retryAt: "soon", cancelRequested: false }],
      [4, "state", { state: "running", attempt: 2, error: null, retryAt: null, cancelRequested: false }],
    ]) {
      events.push({ seq, at: "", type, ...extra });
    }
    for (const e of events) live = applyJobEvent(live, e);
    assert.equal(live.state, "running");
    assert.equal(live.attempt, 2);
    assert.deepEqual([live.percent, live.message], [40, "asking the language model"]);
    assert.deepEqual(live.error, { code: "llm_timeout", message: "slow" }, "the failed attempt's error stays while it retries");
    assert.equal(live.retryAt, null);
    // A replay of an event already folded in changes nothing.
    assert.equal(applyJobEvent(live, events[1]), live);

    let seq = 4;
    for (let i = 0; i < MAX_LOG_LINES + 5; i += 1) live = applyJobEvent(live, { seq: ++seq, at: "", type: "log", line: `line ${i}` });
    assert.equal(live.log.length, MAX_LOG_LINES);
    assert.equal(live.log.at(-1), `line ${MAX_LOG_LINES + 4}`);
    assert.equal(live.log[0], "line 5");

    live = applyJobEvent(live, { seq: ++seq, at: "", type: "result", result: { ok: true } });
    live = applyJobEvent(live, { seq: ++seq, at: "", type: "state", state: "completed", attempt: null, error: null, retryAt: null, cancelRequested: false });
    assert.deepEqual([live.state, live.result, live.error, live.seq], ["completed", { ok: true }, null, seq]);
  });

  it("follows a stream to the final state, in order, without reconnecting", async () => {
    const { open, calls } = opener([() => body(stream)]);
    const seen = [];
    const end = await followJob({ open, signal: new AbortController().signal, onEvent: (e) => seen.push(e.seq), ...noSleep });
    assert.deepEqual(end, { finished: true, last: 6 });
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(calls, [0]);
  });

  it("reconnects after a drop, resuming after the last event and skipping replays", async () => {
    const sleeps = [];
    const retries = [];
    const { open, calls } = opener([
      () => body(stream.slice(0, 3), new TypeError("network error")),
      new TypeError("fetch failed"),
      // A server that replays from an older event: those already seen are not delivered again.
      () => body(stream.slice(1)),
    ]);
    const seen = [];
    const end = await followJob({
      open,
      after: 0,
      signal: new AbortController().signal,
      onEvent: (e) => seen.push(e.seq),
      onRetry: (failure, ms, cause) => retries.push([failure, ms, String(cause)]),
      delay: (n) => 100 * 2 ** n,
      sleep: async (ms) => void sleeps.push(ms),
    });
    assert.deepEqual(end, { finished: true, last: 6 });
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(calls, [0, 3, 3], "each connection resumes after the last event seen");
    assert.deepEqual(sleeps, [100, 200], "the back-off grows while connections fail");
    assert.deepEqual(retries.map(([n]) => n), [0, 1]);
    assert.match(retries[0][2], /network error/);
  });

  it("starts again from 0 failures once events flow, and reconnects after a clean end mid-job", async () => {
    const sleeps = [];
    const { open, calls } = opener([
      new TypeError("down"),
      () => body(stream.slice(0, 2)), // ends cleanly before the job did (a server restarting)
      () => body(stream.slice(2)),
    ]);
    const end = await followJob({ open, signal: new AbortController().signal, onEvent: () => undefined, delay: (n) => n, sleep: async (ms) => void sleeps.push(ms) });
    assert.equal(end.finished, true);
    assert.deepEqual(calls, [0, 0, 2]);
    assert.deepEqual(sleeps, [0, 0]);
  });

  it("reconnects after the server's error event", async () => {
    const { open, calls } = opener([
      () => body([stream[0], 'event: error\ndata: {"error":{"code":"internal_error","message":"store down"}}\n\n']),
      () => body(stream.slice(1)),
    ]);
    const causes = [];
    const end = await followJob({ open, signal: new AbortController().signal, onEvent: () => undefined, onRetry: (_n, _ms, cause) => causes.push(cause.message), ...noSleep });
    assert.equal(end.finished, true);
    assert.deepEqual(calls, [0, 1]);
    assert.deepEqual(causes, ["store down"]);
  });

  it("ends when a stream has nothing new, and throws a 4xx instead of retrying", async () => {
    const quiet = opener([() => body([": keep-alive\n\n"])]);
    assert.deepEqual(await followJob({ open: quiet.open, after: 6, signal: new AbortController().signal, onEvent: () => assert.fail("no events"), ...noSleep }), {
      finished: false,
      last: 6,
    });

    const notFound = Object.assign(new Error("no such job"), { status: 404, code: "not_found" });
    const gone = opener([notFound]);
    await assert.rejects(followJob({ open: gone.open, signal: new AbortController().signal, onEvent: () => undefined, ...noSleep }), /no such job/);
    assert.deepEqual(gone.calls, [0]);

    const busy = Object.assign(new Error("slow down"), { status: 429 });
    const limited = opener([busy, () => body(stream)]);
    assert.equal((await followJob({ open: limited.open, signal: new AbortController().signal, onEvent: () => undefined, ...noSleep })).finished, true);
  });

  it("stops when aborted, also while waiting to reconnect", async () => {
    const controller = new AbortController();
    const { open, calls } = opener([new TypeError("down")]);
    const followed = followJob({
      open,
      signal: controller.signal,
      onEvent: () => undefined,
      delay: () => 60_000,
      onRetry: () => controller.abort(new Error("left the page")),
    });
    await assert.rejects(followed, /left the page/);
    assert.deepEqual(calls, [0], "no connection after the abort");
  });

  it("passes on what onEvent throws, without reconnecting", async () => {
    const { open, calls } = opener([() => body(stream)]);
    await assert.rejects(
      followJob({
        open,
        signal: new AbortController().signal,
        onEvent: (e) => {
          if (e.seq === 3) throw new Error("a bug in the page");
        },
        ...noSleep,
      }),
      /a bug in the page/,
    );
    assert.deepEqual(calls, [0]);
  });
});
