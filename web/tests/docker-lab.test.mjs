// The Docker track in a real Chromium against the real server: a docker lab's terminal runs
// `docker build`, Check shows the image check's build output live, then its failures, and
// passes with the lab's solution. The live log's behaviour (follows the end, keeps the last
// lines, text only, collapses when its check finishes) is also driven with a judge stream the
// test writes itself, so it does not hang on how fast a build happens to be. A server without
// the docker environment says why a docker lab cannot open.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, screenshot, uniqueUsername, waitForPath } from "./support/browser.mjs";
import { repoDir, startServer } from "./support/server.mjs";

const PASSWORD = "correct horse battery";
const SLUG = "docker-dockerignore-health";
const TITLE = "Docker 1/3: .dockerignore and a health check";
const IMAGES_DIR = process.env.SANDPIT_TEST_IMAGES_DIR ?? "/var/cache/sandpit-images";
const SOLUTION_FILES = ["Dockerfile", "app.py", ".dockerignore"];
const solution = (name) => readFileSync(path.join(repoDir, "crates/sandpit-labs/labs", SLUG, "solution", name), "utf8");
const SLOW = { timeout: 60_000 };
// A build from the preloaded base image, and the image check (build, run, probe, stop; the
// lab gives it 300 s).
const BUILD_MS = 300_000;
const CHECK_MS = 330_000;
const DOCKER_READY_MS = 120_000;

/** @type {import("playwright-core").Browser} */
let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

async function withPage(server, name, fn) {
  const session = await openPage(browser, server.baseURL);
  try {
    await fn(session);
    assert.deepEqual(session.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    await screenshot(session.page, `${name}-failure`).catch(() => undefined);
    error.message += `\n${server.logs()}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

async function signUp(page) {
  await page.goto("/signup");
  await page.getByLabel("Username").fill(uniqueUsername("d"));
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign up" }).click();
  await waitForPath(page, "/");
}

/** The docker component of /readyz once it is no longer `checking` (or the time is up). */
async function dockerStatus(baseURL, timeout = DOCKER_READY_MS) {
  const deadline = Date.now() + timeout;
  let docker;
  while (Date.now() < deadline) {
    docker = (await (await fetch(`${baseURL}/readyz`)).json()).components?.docker;
    if (docker && docker.status !== "checking") return docker;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return docker;
}

const terminal = (page) => page.getByRole("region", { name: "Terminal" });

/** The terminal's screen, one string per row (xterm's DOM renderer). */
async function terminalLines(page) {
  return terminal(page)
    .locator(".xterm-rows > div")
    .evaluateAll((rows) => rows.map((r) => (r.textContent ?? "").replace(/\u00a0/g, " ").trimEnd()));
}

async function waitForTerminalLine(page, regex, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  let lines = [];
  while (Date.now() < deadline) {
    lines = await terminalLines(page);
    if (lines.some((l) => regex.test(l))) return;
    await page.waitForTimeout(250);
  }
  assert.fail(`no terminal line matches ${regex}; screen:\n${lines.join("\n")}`);
}

const activeSession = (page, slug) => page.evaluate(async (s) => (await (await fetch(`/api/v1/labs/${s}/active`)).json()).id, slug);

/** The failure codes the Check results list. */
const failureCodes = (page) =>
  page.getByRole("region", { name: "Check results" }).getByRole("list", { name: "Failures" }).locator("code").allTextContents();

describe("a docker lab with the docker environment", () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  before(async () => {
    server = await startServer({ env: { SANDPIT_DOCKER__IMAGES_DIR: IMAGES_DIR } });
  });
  after(async () => {
    await server?.stop();
  });

  it("builds in the terminal, shows the image check's build live, fails it, then passes with the solution", { timeout: 1_200_000 }, async () => {
    await withPage(server, "docker-lab", async ({ page }) => {
      await signUp(page);
      const docker = await dockerStatus(server.baseURL);
      assert.equal(docker?.status, "ok", `the docker environment with images from ${IMAGES_DIR}: ${JSON.stringify(docker)}`);

      await page.goto(`/labs/${SLUG}`);
      await page.getByRole("heading", { level: 1, name: TITLE }).waitFor(SLOW);
      const sessionId = await activeSession(page, SLUG);
      assert.match(sessionId, /^[0-9a-f-]{36}$/);

      // The session's own engine, from the terminal. (The typed command echoes `built-ok` too:
      // only a line of its own is the output.)
      await waitForTerminalLine(page, /\$\s*$/, 60_000);
      await terminal(page).locator(".xterm-screen").click();
      await page.keyboard.type("docker build -t app . && echo built-ok");
      await page.keyboard.press("Enter");
      await waitForTerminalLine(page, /^built-ok$/, BUILD_MS);
      await screenshot(page, "docker-lab-terminal-build");

      // Check the health step with the starter: its build shows while the judge runs.
      await page.getByRole("navigation", { name: "Lab steps" }).getByRole("button", { name: /A \/health endpoint and a HEALTHCHECK/ }).click();
      await page.getByRole("button", { name: "Check", exact: true }).click();
      // One look at the page, so "while it ran" holds: a STEP line in the log, the button still busy.
      await page.waitForFunction(
        () => {
          const log = document.querySelector('[role="log"][aria-label="Build output of image"]');
          const busy = [...document.querySelectorAll("button")].some((b) => b.textContent === "Checking…");
          return busy && log !== null && /STEP \d+\/\d+/.test(log.textContent ?? "");
        },
        undefined,
        { timeout: CHECK_MS, polling: 100 },
      );
      await screenshot(page, "docker-lab-live-build");

      const results = page.getByRole("region", { name: "Check results" });
      await results.waitFor({ timeout: CHECK_MS });
      const codes = await failureCodes(page);
      assert.ok(codes.some((c) => c.startsWith("image.")), `an image.* failure among ${codes.join(", ")}`);
      // Finished: the log collapsed, still there to open again.
      const log = page.getByRole("log", { name: "Build output of image" });
      assert.equal(await log.isVisible(), false, "the log collapses when its check finishes");
      await page.locator("summary").filter({ hasText: /^Build output of image \(/ }).click();
      await log.waitFor();
      assert.match((await log.textContent()) ?? "", /STEP \d+\/\d+/);
      await screenshot(page, "docker-lab-image-failures");

      // The lab's solution, written through the API as another editor would.
      for (const name of SOLUTION_FILES) {
        const status = await page.evaluate(
          async ([id, file, text]) => (await fetch(`/api/v1/sessions/${id}/files/${file}`, { method: "PUT", body: text })).status,
          [sessionId, name, solution(name)],
        );
        assert.ok(status === 200 || status === 201, `PUT ${name}: ${status}`); // 201: a file the starter lacks
      }
      await page.getByRole("button", { name: "Check", exact: true }).click();
      await page.getByRole("status").filter({ hasText: "Passed: A /health endpoint and a HEALTHCHECK" }).waitFor({ timeout: CHECK_MS });
      await screenshot(page, "docker-lab-passed");
    });
  });
});

describe("the Check panel's live output", () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  it("follows the end while its check runs, keeps the last 200 lines as text, and collapses when it finishes", { timeout: 120_000 }, async () => {
    await withPage(server, "docker-lab-live-output", async ({ page }) => {
      // The judge's answer is a stream this test writes event by event (the page's other
      // requests go to the real server).
      await page.addInitScript(() => {
        const native = window.fetch.bind(window);
        window.fetch = (input, init) => {
          const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url, location.href);
          if (!/^\/api\/v1\/sessions\/[^/]+\/judge$/.test(url.pathname)) return native(input, init);
          const encoder = new TextEncoder();
          const body = new ReadableStream({
            start(controller) {
              window.__judge = {
                send: (event, data) => controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify({ event, ...data })}\n\n`)),
                end: () => controller.close(),
              };
            },
          });
          return Promise.resolve(new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } }));
        };
      });
      const send = (event, data) => page.evaluate(([e, d]) => window.__judge.send(e, d), [event, data]);
      // Lines `STEP i: RUN echo i` for i in [from, to], in one go as a build sends them.
      const lines = (from, to) =>
        page.evaluate(
          ([a, b]) => {
            for (let i = a; i <= b; i += 1) window.__judge.send("check_output", { index: 1, code: "image", line: `STEP ${i}: RUN echo ${i}` });
          },
          [from, to],
        );

      await signUp(page);
      await page.goto("/labs/python-functions");
      await page.getByRole("button", { name: "Check", exact: true }).click(SLOW);
      await page.waitForFunction(() => window.__judge !== undefined);
      await send("started", { step: "slugify", checks: 2 });
      await send("check_started", { index: 0, code: "tests", kind: "command" });
      await send("check_finished", { index: 0, code: "tests", status: "failed", elapsed_ms: 3 });
      await send("check_started", { index: 1, code: "image", kind: "image" });
      await send("check_output", { index: 1, code: "image", line: '<img src="x" onerror="window.__pwned = 1"> \u001b[1;31mred\u001b[0m' });
      await lines(2, 250);

      const log = page.getByRole("log", { name: "Build output of image" });
      await log.filter({ hasText: "STEP 250: RUN echo 250" }).waitFor();
      assert.equal(await log.getAttribute("aria-live"), "off");
      const text = (await log.textContent()) ?? "";
      assert.equal(text.split("\n").length, 200, "the last 200 lines");
      assert.match(text, /^STEP 51: RUN echo 51\n/);
      await page.locator("summary").filter({ hasText: "Build output of image (running, last 200 of 250 lines)" }).waitFor();
      const atEnd = () => log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 2);
      assert.ok(await atEnd(), "the log follows its end");
      assert.equal(await page.getByRole("button", { name: "Checking…" }).isDisabled(), true);
      await screenshot(page, "docker-lab-live-output");

      // The markup line was text: the first line sent, so gone now; send it again and look.
      await send("check_output", { index: 1, code: "image", line: '<img src="x" onerror="window.__pwned = 1"> \u001b[1;31mred\u001b[0m' });
      await log.filter({ hasText: '<img src="x" onerror="window.__pwned = 1"> red' }).waitFor();
      assert.equal(await log.locator("img").count(), 0);
      assert.equal(await page.evaluate(() => window.__pwned), undefined);

      // Scrolled up to read: new lines do not pull the learner back down.
      await log.evaluate((el) => {
        el.scrollTop = 0;
      });
      await page.waitForTimeout(100);
      await lines(251, 260);
      await log.filter({ hasText: "STEP 260: RUN echo 260" }).waitFor();
      assert.equal(await log.evaluate((el) => el.scrollTop), 0, "stays where the learner scrolled");

      // The check finishes: collapsed, and open again on request.
      await send("check_finished", { index: 1, code: "image", status: "failed", elapsed_ms: 4200 });
      await log.waitFor({ state: "hidden" });
      const summary = page.locator("summary").filter({ hasText: "Build output of image (last 200 of 261 lines)" });
      await summary.click();
      await log.waitFor();

      const buildLog = Array.from({ length: 80 }, (_, i) => `STEP ${i + 1}/80: RUN ${"x".repeat(i % 7 === 0 ? 400 : 20)}`).join("\n");
      await send("attempt", {
        id: "a1",
        lab: "python-functions",
        step: "slugify",
        session_id: "s",
        passed: false,
        failures: [{ code: "image.build_failed", message: "the image did not build", hint: "Read the build log in the notes." }],
        notes: [buildLog],
        submitted_at: new Date().toISOString(),
      });
      await page.evaluate(() => window.__judge.end());
      await page.getByRole("button", { name: "Check", exact: true }).waitFor();
      assert.deepEqual(await failureCodes(page), ["image.build_failed"]);
      assert.ok(await log.isVisible(), "the output stays as the learner left it");

      // The notes (a build log): monospace, wrapped, in a box of its own that scrolls.
      await page.locator("summary").filter({ hasText: "Notes (1)" }).click();
      const notes = page.locator(".ws-notes pre");
      const style = await notes.evaluate((el) => {
        const s = getComputedStyle(el);
        return { font: s.fontFamily, whiteSpace: s.whiteSpace, overflowY: s.overflowY, scrolls: el.scrollHeight > el.clientHeight, wide: el.scrollWidth > el.clientWidth };
      });
      assert.match(style.font, /monospace/);
      assert.equal(style.whiteSpace, "pre-wrap");
      assert.equal(style.overflowY, "auto");
      assert.ok(style.scrolls, "a long log scrolls inside its box");
      assert.equal(style.wide, false, "long lines wrap rather than widen the panel");
      await screenshot(page, "docker-lab-notes");
    });
  });
});

describe("a docker lab without the docker environment", () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  before(async () => {
    server = await startServer({ unset: ["SANDPIT_DOCKER__IMAGES_DIR"] });
  });
  after(async () => {
    await server?.stop();
  });

  it("says why it cannot open, with Try again only while the server is still checking", { timeout: 180_000 }, async () => {
    await withPage(server, "docker-lab-unavailable", async ({ page }) => {
      await signUp(page);

      // While the server checks at start-up it answers 503 with Retry-After: that answer,
      // made here so it does not depend on how long the check takes.
      const start = `**/api/v1/labs/${SLUG}/start`;
      await page.route(start, (route) =>
        route.fulfill({
          status: 503,
          headers: { "Content-Type": "application/json", "Retry-After": "5" },
          body: JSON.stringify({
            error: { code: "docker_unavailable", message: "the docker environment is still being checked; try again in a few seconds" },
          }),
        }),
      );
      await page.goto(`/labs/${SLUG}`);
      await page.getByRole("heading", { level: 1, name: TITLE }).waitFor(SLOW);
      await page.getByRole("alert").filter({ hasText: "the docker environment is still being checked" }).waitFor();
      await page.getByText("try again in 5 s").waitFor();
      await page.unroute(start);

      // The real answer once the check is over: not available, and why; retrying would not help.
      const docker = await dockerStatus(server.baseURL);
      assert.equal(docker?.status, "unavailable", JSON.stringify(docker));
      await page.getByRole("button", { name: "Try again" }).click();
      const alert = page.getByRole("alert").filter({ hasText: "the docker environment is not available on this server" });
      await alert.waitFor(SLOW);
      await page.getByRole("heading", { level: 2, name: "This lab needs the docker environment" }).waitFor();
      assert.equal(await page.getByRole("button", { name: "Try again" }).count(), 0);
      assert.ok(await page.getByRole("link", { name: "Back to labs" }).isVisible());
      await screenshot(page, "docker-lab-unavailable");
    });
  });
});
