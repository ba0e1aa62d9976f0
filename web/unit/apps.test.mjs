// The apps pages' pure parts: a deploy's stepper (src/apps/deploySteps.ts) and following an
// app's log (src/apps/appLogs.ts), without a browser or a server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { followLogs, keep, toLogLine } from "../unit-build/apps/appLogs.js";
import { appNameFrom, guessRuntime, progressOfVersion, stageOfJobError, stepsOf } from "../unit-build/apps/deploySteps.js";
import { body } from "./streams.mjs";

/** The stepper as text: `stage:state`, the current one starred. */
const show = (steps) => steps.map((s) => `${s.stage}:${s.state}${s.current ? "*" : ""}`);

/** One `line` event as the server writes it: `id` = seq. */
const line = (seq, text, stream = "stdout") =>
  `id: ${seq}\nevent: line\ndata: ${JSON.stringify({ seq, at: "2030-01-01T00:00:00Z", stream, text })}\n\n`;

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

describe("deploy steps", () => {
  it("marks the stages before the current one done and the rest pending", () => {
    assert.deepEqual(show(stepsOf({ state: "queued", stage: null })), ["validating:pending", "installing:pending", "starting:pending", "healthy:pending"]);
    assert.deepEqual(show(stepsOf({ state: "running", stage: "installing" })), ["validating:done", "installing:active*", "starting:pending", "healthy:pending"]);
    assert.deepEqual(show(stepsOf({ state: "completed", stage: "healthy" })), ["validating:done", "installing:done", "starting:done", "healthy:done*"]);
  });

  it("marks the failed stage: the one the error names, else the one reached", () => {
    assert.deepEqual(show(stepsOf({ state: "failed", stage: "starting", failedAt: "validating" })), [
      "validating:failed*",
      "installing:pending",
      "starting:pending",
      "healthy:pending",
    ]);
    // `deploy` (its time limit) is no stage of the four: the one reached failed.
    assert.deepEqual(show(stepsOf({ state: "failed", stage: "starting", failedAt: "deploy" })), [
      "validating:done",
      "installing:done",
      "starting:failed*",
      "healthy:pending",
    ]);
    assert.deepEqual(show(stepsOf({ state: "cancelled", stage: null })), ["validating:cancelled*", "installing:pending", "starting:pending", "healthy:pending"]);
  });

  it("reads a version's end and a failed job's stage", () => {
    assert.deepEqual(progressOfVersion({ state: "superseded" }), { state: "completed", stage: "healthy" });
    assert.deepEqual(progressOfVersion({ state: "failed", error: { stage: "installing" } }), { state: "failed", stage: null, failedAt: "installing" });
    assert.equal(progressOfVersion({ state: "pending" }).state, "queued");
    assert.equal(stageOfJobError("validating: main.py:1: invalid syntax"), "validating");
    assert.equal(stageOfJobError("the app was deleted"), null);
    assert.equal(stageOfJobError(null), null);
  });

  it("guesses the runtime from the files and a name from text", () => {
    assert.equal(guessRuntime(["README.md", "main.py", "index.html"]), "python");
    assert.equal(guessRuntime(["server.js", "index.html"]), "node");
    assert.equal(guessRuntime(["index.html", "style.css"]), "static");
    assert.equal(guessRuntime(["notes.txt"]), null);
    assert.equal(appNameFrom("Python Basics: the REPL!"), "python-basics-the-repl");
    assert.equal(appNameFrom("--"), "");
    assert.equal(appNameFrom("x".repeat(45)).length, 40);
    // Cut at 40, it may end in a hyphen, which a name may not.
    assert.equal(appNameFrom(`${"x".repeat(39)}-yz`), "x".repeat(39));
  });
});

describe("app logs", () => {
  it("types line events and drops others or malformed ones", () => {
    assert.deepEqual(toLogLine({ event: "line", id: "3", data: '{"seq":3,"at":"t","stream":"stderr","text":"boom"}' }), {
      seq: 3,
      at: "t",
      stream: "stderr",
      text: "boom",
    });
    for (const data of ["nope", "{}", '{"seq":0,"stream":"stdout","text":""}', '{"seq":1,"stream":"stdout"}']) {
      assert.equal(toLogLine({ event: "line", id: "", data }), null, data);
    }
    assert.equal(toLogLine({ event: "message", id: "1", data: '{"seq":1,"stream":"stdout","text":"x"}' }), null);
  });

  it("keeps the newest lines up to the cap, once each, counting those let go", () => {
    let kept = { lines: [], cut: 0 };
    for (let seq = 1; seq <= 7; seq += 1) kept = keep(kept, { seq, at: "", stream: "stdout", text: `l${seq}` }, 5);
    assert.deepEqual(kept.lines.map((l) => l.seq), [3, 4, 5, 6, 7]);
    assert.equal(kept.cut, 2);
    assert.equal(keep(kept, { seq: 6, at: "", stream: "stdout", text: "again" }, 5), kept, "a replayed line changes nothing");
  });

  it("resumes after the last line on every end or drop, and stops on a 4xx", async () => {
    const notFound = Object.assign(new Error("no such app"), { status: 404 });
    const { open, calls } = opener([
      () => body([line(1, "a"), line(2, "b")], new TypeError("network error")),
      new TypeError("fetch failed"),
      // A clean end (the server let go) and a replay of an old line: not delivered again.
      () => body([line(2, "b"), line(3, "c")]),
      notFound,
    ]);
    const seen = [];
    const sleeps = [];
    let opened = 0;
    await assert.rejects(
      followLogs({
        open,
        signal: new AbortController().signal,
        onLine: (l) => seen.push(l.text),
        onOpen: () => (opened += 1),
        delay: (n) => 100 * 2 ** n,
        sleep: async (ms) => void sleeps.push(ms),
      }),
      /no such app/,
    );
    assert.deepEqual(seen, ["a", "b", "c"]);
    assert.deepEqual(calls, [0, 2, 2, 3], "each connection resumes after the last line seen");
    assert.deepEqual(sleeps, [100, 200, 100], "the back-off starts over once lines flow");
    assert.equal(opened, 2);
  });

  it("stops when aborted, and with what onLine throws", async () => {
    const controller = new AbortController();
    const { open } = opener([new TypeError("down")]);
    const following = followLogs({
      open,
      signal: controller.signal,
      onLine: () => undefined,
      delay: () => 60_000,
      onRetry: () => queueMicrotask(() => controller.abort(new Error("left the page"))),
    });
    await assert.rejects(following, /left the page/);

    const boom = opener([() => body([line(1, "x")])]);
    await assert.rejects(
      followLogs({ open: boom.open, signal: new AbortController().signal, onLine: () => { throw new Error("render failed"); }, sleep: async () => undefined }),
      /render failed/,
    );
  });
});
