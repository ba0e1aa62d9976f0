// Checks a Node app's imports before it is deployed, inside the app's sandbox with its files as
// the working directory (each file's syntax was checked with `node --check` before).
// The last argument is JSON: {"entry": "server.js", "files": [...], "packages": [...], "forbidden": [...]}.
// Prints one JSON object: {"ok": true} or {"ok": false, "error": {"code", "message", "file", "line"}}.
// Imports are found in the source text with comments blanked out: static `import`, `import()`
// and `require()` of a literal name. A computed name is not seen; the sandbox, not this check,
// is what keeps an app in.
"use strict";
const fs = require("fs");
const { builtinModules } = require("module");

const config = JSON.parse(process.argv.at(-1));
const builtins = new Set(builtinModules);

function fail(code, message, file, line) {
  console.log(JSON.stringify({ ok: false, error: { code, message, file: file ?? null, line: line ?? null } }));
  process.exit(0);
}

function blankComments(source) {
  const blank = (text) => text.replace(/[^\n]/g, " ");
  return source.replace(/\/\*[\s\S]*?\*\//g, blank).replace(/(^|[^:\\'"`])\/\/[^\n]*/g, (m, before) => before + blank(m.slice(before.length)));
}

const pattern =
  /\brequire\s*\(\s*(['"`])([^'"`\n]+)\1\s*\)|\bimport\s*\(\s*(['"`])([^'"`\n]+)\3\s*\)|\bimport\s+(?:[\w$*{}\s,]+?\s+from\s+)?(['"])([^'"\n]+)\5|\bexport\s+[\w$*{}\s,]*?\s+from\s+(['"])([^'"\n]+)\7/g;

for (const file of config.files) {
  const source = blankComments(fs.readFileSync(file, "utf8"));
  for (const match of source.matchAll(pattern)) {
    const spec = match[2] ?? match[4] ?? match[6] ?? match[8];
    const line = source.slice(0, match.index).split("\n").length;
    if (spec.startsWith(".") || spec.startsWith("/")) continue;
    const name = spec.replace(/^node:/, "");
    const top = name.startsWith("@") ? name.split("/").slice(0, 2).join("/") : name.split("/")[0];
    if (config.forbidden.includes(top)) {
      fail("forbidden_import", `${file}:${line}: apps may not use ${top}`, file, line);
    }
    if (builtins.has(top) || config.packages.includes(top)) continue;
    fail(
      "import_not_allowed",
      `${file}:${line}: ${spec} is not available here; apps may use Node's built-in modules, their own files and: ${config.packages.join(", ")}`,
      file,
      line,
    );
  }
}
if (!fs.existsSync(config.entry)) {
  fail("entry_not_found", `the entry file ${config.entry} does not exist`, config.entry);
}
console.log(JSON.stringify({ ok: true }));
