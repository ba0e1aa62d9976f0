// A running check's live output as the Check panel keeps it (src/workspace/checkOutput.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { appendLine, finishOutput, MAX_OUTPUT_LINES, plainLine } from "../unit-build/workspace/checkOutput.js";

const line = (index, text) => ({ index, code: "image", line: text });

describe("check output", () => {
  it("keeps each check's lines in order, the checks in index order", () => {
    let outputs = [];
    outputs = appendLine(outputs, line(3, "STEP 1/2: FROM python:3.11-slim"), "image");
    outputs = appendLine(outputs, { index: 1, code: "other", line: "a" });
    outputs = appendLine(outputs, line(3, "STEP 2/2: COPY . ."), "ignored: the kind is the first line's");
    assert.deepEqual(
      outputs.map((o) => [o.index, o.code, o.kind, o.lines, o.running]),
      [
        [1, "other", "", ["a"], true],
        [3, "image", "image", ["STEP 1/2: FROM python:3.11-slim", "STEP 2/2: COPY . ."], true],
      ],
    );
  });

  it("keeps only the last lines, counting the ones dropped, without changing its input", () => {
    let outputs = [];
    for (let i = 1; i <= MAX_OUTPUT_LINES + 50; i += 1) outputs = appendLine(outputs, line(0, `line ${i}`));
    const [o] = outputs;
    assert.equal(o.lines.length, MAX_OUTPUT_LINES);
    assert.equal(o.lines[0], "line 51");
    assert.equal(o.lines.at(-1), `line ${MAX_OUTPUT_LINES + 50}`);
    assert.equal(o.dropped, 50);
    const before = appendLine([], line(0, "x"));
    appendLine(before, line(0, "y"));
    assert.deepEqual(before[0].lines, ["x"]);
    assert.equal(appendLine([], line(0, "a"), "", 1).length, 1);
  });

  it("marks one check or all of them finished", () => {
    let outputs = appendLine(appendLine([], line(0, "a")), line(1, "b"));
    outputs = finishOutput(outputs, 1);
    assert.deepEqual(outputs.map((o) => o.running), [true, false]);
    assert.deepEqual(finishOutput(outputs).map((o) => o.running), [false, false]);
  });

  it("shows a line as plain text: no terminal escapes, a redrawn line's last state", () => {
    assert.equal(plainLine("\u001b[1;32mSuccessfully\u001b[0m tagged app"), "Successfully tagged app");
    assert.equal(plainLine("Copying blob 10%\rCopying blob 55%\rCopying blob done\r"), "Copying blob done");
    assert.equal(plainLine("a\u0000b\u0007c\u001b7d\u001b(Be\tend"), "abcde\tend");
    assert.equal(plainLine("\u001b]0;podman build\u0007STEP 1/3"), "STEP 1/3");
    assert.equal(plainLine("<b>not markup</b>"), "<b>not markup</b>");
    assert.equal(plainLine(""), "");
  });
});
