// The line diff shown when reviewing a code job's change set (src/projects/lineDiff.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hunks, lineDiff } from "../unit-build/projects/lineDiff.js";

/** A diff as unified-diff-like lines: " same", "-del", "+add". */
const show = (diff) => diff.map((l) => `${l.op === "same" ? " " : l.op === "add" ? "+" : "-"}${l.text}`);

describe("line diff", () => {
  it("shows a changed line as removed then added, with the rest unchanged", () => {
    const before = "def greet(name):\n    return f\"Hello, {name}!\"\n";
    const after = "def greet(name):\n    return f\"Hi, {name}!\"\n\n\ndef reverse(text):\n    return text[::-1]\n";
    assert.deepEqual(show(lineDiff(before, after)), [
      " def greet(name):",
      '-    return f"Hello, {name}!"',
      '+    return f"Hi, {name}!"',
      "+",
      "+",
      "+def reverse(text):",
      "+    return text[::-1]",
    ]);
  });

  it("numbers the lines of both sides", () => {
    const diff = lineDiff("a\nb\nc\n", "a\nc\nd\n");
    assert.deepEqual(
      diff.map((l) => [l.op, l.old, l.new]),
      [
        ["same", 1, 1],
        ["del", 2, null],
        ["same", 3, 2],
        ["add", null, 3],
      ],
    );
  });

  it("finds the common lines inside a changed middle, and handles empty sides", () => {
    assert.deepEqual(show(lineDiff("x\n1\n2\n3\ny\n", "x\n0\n1\n3\n4\ny\n")), [" x", "+0", " 1", "-2", " 3", "+4", " y"]);
    assert.deepEqual(show(lineDiff("", "new\n")), ["+new"]);
    assert.deepEqual(show(lineDiff("old\n", "")), ["-old"]);
    assert.deepEqual(lineDiff("same\n", "same\n").map((l) => l.op), ["same"]);
    assert.deepEqual(show(lineDiff("a\r\nb\r\n", "a\nb\n")), [" a", " b"], "CRLF and LF lines compare equal");
  });

  it("gives up (null) when the changed middle is too large", () => {
    const many = (p) => Array.from({ length: 50 }, (_, i) => `${p}${i}`).join("\n");
    assert.equal(lineDiff(many("a"), many("b"), 2000), null);
    assert.ok(lineDiff(`keep\n${many("a")}`, `keep\n${many("a")}\nmore`, 2000), "a common head and tail cost nothing");
  });

  it("groups changes into hunks with context", () => {
    const before = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join("\n");
    const after = before.replace("line 2\n", "line two\n").replace("line 18\n", "");
    const parts = hunks(lineDiff(before, after), 2);
    assert.equal(parts.length, 2);
    assert.deepEqual(show(parts[0].lines), [" line 1", "-line 2", "+line two", " line 3", " line 4"]);
    assert.deepEqual(show(parts[1].lines), [" line 16", " line 17", "-line 18", " line 19", " line 20"]);
    assert.deepEqual(hunks(lineDiff("a\n", "a\n")), []);
  });
});
