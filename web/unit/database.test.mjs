// The database viewer's pure parts: paging through a table's rows (src/database/paging.ts) and
// showing cells, console answers, what deleting loses and what a rotation did
// (src/database/cells.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { databaseSays, formatBytes, formatCell, rotatedText, summarize, whatIsLost } from "../unit-build/database/cells.js";
import { clampOffset, count, pageAt, PAGE_SIZE, rangeText } from "../unit-build/database/paging.js";

describe("paging", () => {
  it("says which rows a page holds and where the pages before and after start", () => {
    const first = pageAt(0, 50, 123);
    assert.deepEqual(first, { first: 1, last: 50, total: 123, previous: null, next: 50, number: 1, pages: 3 });
    assert.equal(rangeText(first), "Rows 1–50 of 123");
    const last = pageAt(100, 23, 123);
    assert.deepEqual([last.first, last.last, last.previous, last.next, last.number], [101, 123, 50, null, 3]);
    assert.equal(rangeText(pageAt(50, 10, 60)), "Rows 51–60 of 60");
    // Exactly a page's worth: no empty page after it.
    assert.equal(pageAt(0, 50, 50).next, null);
    assert.equal(pageAt(0, 50, 50).pages, 1);
    assert.equal(PAGE_SIZE, 50);
  });

  it("words one row, none, and an offset past the end", () => {
    assert.equal(rangeText(pageAt(0, 1, 1)), "Row 1 of 1");
    assert.equal(rangeText(pageAt(50, 1, 51)), "Row 51 of 51");
    const empty = pageAt(0, 0, 0);
    assert.equal(rangeText(empty), "No rows");
    assert.deepEqual([empty.previous, empty.next, empty.number, empty.pages], [null, null, 1, 1]);
    assert.equal(rangeText(pageAt(100, 0, 60)), "No rows here, of 60 rows");
    // A page size of its own: an offset off the grid still goes back to 0, not below.
    assert.equal(pageAt(7, 10, 30, 10).previous, 0);
    assert.equal(count(1, "row"), "1 row");
    assert.equal(count(0, "row"), "0 rows");
  });

  it("moves an offset past the end back to the last page, on a page boundary", () => {
    assert.equal(clampOffset(100, 60), 50);
    assert.equal(clampOffset(50, 60), 50);
    assert.equal(clampOffset(50, 50), 0);
    assert.equal(clampOffset(150, 0), 0);
    assert.equal(clampOffset(-5, 10), 0);
    assert.equal(clampOffset(37, 500), 0, "onto the grid");
    assert.equal(clampOffset(30, 25, 10), 20);
  });
});

describe("cells", () => {
  it("keeps each kind of cell apart, text as it is", () => {
    assert.deepEqual(formatCell(null), { kind: "null", text: "NULL" });
    assert.deepEqual(formatCell(undefined), { kind: "null", text: "NULL" }, "a short row");
    // The word NULL as text is text, not a null.
    assert.deepEqual(formatCell("NULL"), { kind: "text", text: "NULL" });
    assert.deepEqual(formatCell(""), { kind: "text", text: "" });
    assert.deepEqual(formatCell(0), { kind: "number", text: "0" });
    assert.deepEqual(formatCell(-1.5), { kind: "number", text: "-1.5" });
    assert.deepEqual(formatCell(false), { kind: "boolean", text: "false" });
    const markup = "<img src=x onerror=window.__pwned=1>";
    assert.deepEqual(formatCell(markup), { kind: "text", text: markup });
  });

  it("shows binary as its size and hex, saying when the hex is cut", () => {
    assert.deepEqual(formatCell({ bytes: 2, hex: "00ff" }), { kind: "binary", text: "00ff", note: "2 bytes" });
    assert.deepEqual(formatCell({ bytes: 0, hex: "" }), { kind: "binary", text: "", note: "0 bytes" });
    assert.deepEqual(formatCell({ bytes: 5000, hex: `${"ab".repeat(1000)}…` }), {
      kind: "binary",
      text: `${"ab".repeat(1000)}…`,
      note: "4.9 KiB, the first 1000 bytes shown",
    });
    // Any other object (a PostgreSQL array or JSON value) is JSON text.
    assert.deepEqual(formatCell({ bytes: 1, hex: "00", more: true }), { kind: "json", text: '{"bytes":1,"hex":"00","more":true}' });
    assert.deepEqual(formatCell([1, "a"]), { kind: "json", text: '[1,"a"]' });
  });

  it("sizes bytes", () => {
    assert.equal(formatBytes(0), "0 bytes");
    assert.equal(formatBytes(1), "1 byte");
    assert.equal(formatBytes(1023), "1023 bytes");
    assert.equal(formatBytes(8192), "8 KiB");
    assert.equal(formatBytes(1536 * 1024), "1.5 MiB");
    assert.equal(formatBytes(3 * 1024 ** 3), "3 GiB");
  });
});

describe("console answers", () => {
  const cols = [{ name: "id", type: "" }];
  it("counts rows, says when there are more, and counts a write's changes", () => {
    assert.equal(summarize({ columns: cols, rows: [[1], [2], [3]], truncated: false }), "3 rows.");
    assert.equal(summarize({ columns: cols, rows: [[1]], truncated: false }), "1 row.");
    assert.equal(summarize({ columns: cols, rows: [], truncated: false }), "No rows.");
    assert.equal(summarize({ columns: cols, rows: Array(200).fill([1]), truncated: true }), "The first 200 rows: there are more. Narrow it with WHERE or LIMIT.");
    assert.equal(summarize({ columns: [], rows: [], truncated: false, rows_affected: 60 }), "Done: 60 rows changed.");
    assert.equal(summarize({ columns: [], rows: [], truncated: false, rows_affected: 1 }), "Done: 1 row changed.");
    assert.equal(summarize({ columns: [], rows: [], truncated: false, rows_affected: 0 }), "Done: no rows changed.");
    assert.equal(summarize({ columns: [], rows: [], truncated: false, rows_affected: null }), "Done.");
  });

  it("gives the database's words without the API's field prefix", () => {
    assert.equal(databaseSays("sql: no such table: nope"), "no such table: nope");
    assert.equal(databaseSays('syntax error at or near "SELEC"'), 'syntax error at or near "SELEC"');
    assert.equal(databaseSays("sql: sql: x"), "sql: x", "only the prefix");
  });
});

describe("what deleting loses", () => {
  const table = (name, rows) => ({ name, kind: "table", rows, columns: [] });
  it("names the tables with their rows, and views", () => {
    assert.equal(whatIsLost([]), "It holds no tables yet.");
    assert.equal(whatIsLost([table("notes", 60)]), "You lose notes (60 rows).");
    assert.equal(whatIsLost([table("notes", 1), { name: "recent", kind: "view", rows: null, columns: [] }]), "You lose notes (1 row) and the view recent.");
    assert.equal(whatIsLost(null), "You lose every table and row in it.");
  });

  it("counts the tables past the first five", () => {
    const many = ["a", "b", "c", "d", "e", "f", "g"].map((n) => table(n, 0));
    assert.equal(whatIsLost(many), "You lose a (0 rows), b (0 rows), c (0 rows), d (0 rows), e (0 rows) and 2 more tables.");
  });
});

describe("rotating", () => {
  it("says which running apps are deployed again with the new password", () => {
    assert.equal(rotatedText(undefined), "New password made: the old one no longer works.");
    assert.equal(rotatedText([]), "New password made: the old one no longer works.");
    assert.equal(rotatedText(["j1"]), "New password made: the old one no longer works. Your running app is deployed again with it: it switches over once healthy.");
    assert.match(rotatedText(["j1", "j2"]), /Your 2 running apps are deployed again with it: each switches over/);
  });
});
