// Web bench: the size of what the SPA ships (gzip) and the time from navigation to an
// interactive terminal on the lab page, measured in the browser against the real server on
// localhost. Prints a table; nothing is asserted (timings are not tests on this machine).
//
//   (cd .. && cargo build --release -p sandpit) && npm run build
//   SANDPIT_BIN=../target/release/sandpit node bench/terminal-ready.mjs
//
// Knob: BENCH_LOADS (page loads measured, default 10). "Interactive" = the shell's prompt is on
// the xterm screen and the WebSocket is open, so a keystroke would reach the shell.
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { launchBrowser, openPage, uniqueUsername } from "../tests/support/browser.mjs";
import { startServer, webDir } from "../tests/support/server.mjs";

const LOADS = Number(process.env.BENCH_LOADS ?? 10);
const SLUG = "python-functions";

function shippedSizes() {
  const assets = path.join(webDir, "dist", "assets");
  let js = 0;
  let css = 0;
  let swagger = 0;
  for (const name of readdirSync(assets)) {
    const data = readFileSync(path.join(assets, name));
    const gz = gzipSync(data, { level: 9 }).length;
    if (/swagger/i.test(data.toString("utf8")) || name.startsWith("api-docs")) swagger += gz;
    else if (name.endsWith(".js")) js += gz;
    else if (name.endsWith(".css")) css += gz;
  }
  return { js, css, swagger };
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

const server = await startServer();
const browser = await launchBrowser();
try {
  const { context, page } = await openPage(browser, server.baseURL);
  const username = uniqueUsername("bench");
  const signup = await page.request.post("/api/v1/auth/signup", {
    data: { username, password: "correct horse battery" },
  });
  if (!signup.ok()) throw new Error(`signup: ${signup.status()}`);

  const timings = [];
  for (let i = 0; i <= LOADS; i += 1) {
    await page.goto("about:blank");
    const start = Date.now();
    await page.goto(`/labs/${SLUG}`);
    await page.waitForFunction(
      () => {
        const rows = document.querySelectorAll(".xterm-rows > div");
        return [...rows].some((r) => /\$\s*$/.test((r.textContent ?? "").replace(/\u00a0/g, " ")));
      },
      null,
      { timeout: 60_000, polling: 10 },
    );
    const ms = Date.now() - start;
    // The first load also creates the session (sandbox + workspace): reported apart.
    timings.push(ms);
  }
  await context.close();

  const [first, ...rest] = timings;
  const sizes = shippedSizes();
  const kb = (b) => `${(b / 1024).toFixed(1)} kB`;
  console.log("## sandpit web bench\n");
  console.log(`Chromium headless on localhost; ${LOADS} reloads of /labs/${SLUG} after the first.\n`);
  console.log("| measure | result | target |");
  console.log("|---|---|---|");
  const total = sizes.js + sizes.css;
  console.log(`| shipped JS + CSS of the app (gzip, all chunks) | ${kb(total)} (JS ${kb(sizes.js)}, CSS ${kb(sizes.css)}); API docs page apart: ${kb(sizes.swagger)} | ≤ 600 kB: ${total <= 600 * 1024 ? "met" : "MISSED"} |`);
  console.log(`| navigation → interactive terminal, first visit (starts the session) | ${first} ms | — |`);
  const p50 = quantile(rest, 0.5);
  console.log(`| navigation → interactive terminal, later visits p50 / max | ${p50} ms / ${Math.max(...rest)} ms | ≤ 1 s: ${p50 <= 1000 ? "met" : "MISSED"} |`);
} finally {
  await browser.close();
  await server.stop();
}
