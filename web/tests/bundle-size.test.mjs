// The SPA stays small: Swagger UI (and anything like it) belongs to the docs page only.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { it } from "node:test";
import { gzipSync } from "node:zlib";
import { webDir } from "./support/server.mjs";

const dist = path.join(webDir, "dist");
// gzip bytes of the JS + CSS that index.html loads; raise it deliberately, with a reason.
const SPA_BUDGET_GZIP = 30 * 1024;
// gzip bytes of everything the SPA can ever load: the initial page plus its lazy chunks (the lab
// workspace with CodeMirror and xterm.js, a project's page sharing its editor, language modes,
// the apps pages, the "Deploy as app" dialog and the database viewer).
// Swagger UI is the docs page's alone.
const SPA_ALL_BUDGET_GZIP = 600 * 1024;

function assetsOf(htmlFile) {
  const html = readFileSync(path.join(dist, htmlFile), "utf8");
  const urls = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  return [...new Set(urls)].map((url) => path.join(dist, url));
}

/**
 * The SPA's whole module graph from index.html: every `assets/…` or `./…` JS/CSS name that a
 * loaded file mentions (static imports, `import()` in any quote style, preloaded CSS).
 */
function spaGraph() {
  const seen = new Set();
  const queue = assetsOf("index.html");
  while (queue.length > 0) {
    const file = queue.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    if (!file.endsWith(".js")) continue;
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/["'`](?:\/?assets\/|\.\/)([\w.-]+\.(?:js|css))["'`]/g)) {
      const next = path.join(dist, "assets", m[1]);
      if (existsSync(next)) queue.push(next);
    }
  }
  return [...seen];
}

const gzipSize = (file) => gzipSync(readFileSync(file), { level: 9 }).length;

it("builds both pages into dist/ with absolute /assets/ URLs", () => {
  assert.ok(existsSync(path.join(dist, "index.html")), "run `npm run build` first");
  for (const page of ["index.html", "api-docs.html"]) {
    const assets = assetsOf(page);
    assert.ok(assets.some((f) => f.endsWith(".js")), `${page} loads a script`);
    for (const file of assets) assert.ok(existsSync(file), `${file} exists`);
  }
});

it("keeps the SPA bundle within budget and free of Swagger UI", () => {
  const assets = assetsOf("index.html");
  const total = assets.reduce((sum, file) => sum + gzipSize(file), 0);
  console.log(`SPA: ${assets.map((f) => path.basename(f)).join(", ")} = ${(total / 1024).toFixed(1)} kB gzip`);
  assert.ok(total <= SPA_BUDGET_GZIP, `SPA is ${total} B gzip, budget ${SPA_BUDGET_GZIP} B`);
  for (const file of assets) {
    assert.doesNotMatch(readFileSync(file, "utf8"), /swagger/i, `${path.basename(file)} contains Swagger UI`);
  }
});

it("keeps all of the SPA (initial + lazy chunks) within budget and free of Swagger UI", () => {
  const files = spaGraph();
  const sizes = files.map((f) => [path.basename(f), gzipSize(f)]).sort((a, b) => b[1] - a[1]);
  const total = sizes.reduce((sum, [, n]) => sum + n, 0);
  for (const [name, n] of sizes) console.log(`  ${name}: ${(n / 1024).toFixed(1)} kB gzip`);
  console.log(`SPA, all chunks: ${files.length} files = ${(total / 1024).toFixed(1)} kB gzip`);
  assert.ok(files.some((f) => path.basename(f).startsWith("LabWorkspacePage")), "the lazy workspace chunk is reached");
  assert.ok(files.some((f) => path.basename(f).startsWith("ProjectPage")), "the lazy project chunk is reached");
  assert.ok(files.some((f) => path.basename(f).startsWith("AppPage")), "the lazy app chunk is reached");
  assert.ok(files.some((f) => path.basename(f).startsWith("DeployDialog")), "the lazy deploy dialog is reached");
  assert.ok(files.some((f) => path.basename(f).startsWith("DatabasePage")), "the lazy database viewer chunk is reached");
  assert.ok(total <= SPA_ALL_BUDGET_GZIP, `the SPA's chunks are ${total} B gzip, budget ${SPA_ALL_BUDGET_GZIP} B`);
  for (const file of files) {
    assert.doesNotMatch(readFileSync(file, "utf8"), /swagger/i, `${path.basename(file)} contains Swagger UI`);
  }
});
