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

function assetsOf(htmlFile) {
  const html = readFileSync(path.join(dist, htmlFile), "utf8");
  const urls = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  return [...new Set(urls)].map((url) => path.join(dist, url));
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
