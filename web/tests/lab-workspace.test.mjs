// The lab workspace (/labs/<slug>) in a real Chromium against the real server and a real
// sandbox: terminal, editor with save and conflicts, Check with failures and hints, steps to
// "Lab complete", and the terminal's screen coming back after a reload.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, screenshot, uniqueUsername, waitForPath } from "./support/browser.mjs";
import { pythonProgram } from "./support/playground.mjs";
import { repoDir, startServer } from "./support/server.mjs";

const PASSWORD = "correct horse battery";
const SLUG = "python-functions";
const solution = (name) => readFileSync(path.join(repoDir, "crates/sandpit-labs/labs", SLUG, "solution", name), "utf8");
const SLOW = { timeout: 60_000 };

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;

before(async () => {
  // Few hints per minute, so the third help request meets the rate limit.
  server = await startServer({ env: { SANDPIT_LABS__HINTS_PER_MINUTE: "2" } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function withPage(fn, options) {
  const session = await openPage(browser, server.baseURL, options);
  try {
    await fn(session);
    assert.deepEqual(session.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    await screenshot(session.page, "lab-workspace-failure").catch(() => undefined);
    error.message += `\n${server.logs()}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

async function signUp(page) {
  const username = uniqueUsername("w");
  await page.goto("/signup");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign up" }).click();
  await waitForPath(page, "/");
  return username;
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
    await page.waitForTimeout(200);
  }
  assert.fail(`no terminal line matches ${regex}; screen:\n${lines.join("\n")}`);
}

/** Replaces the open editor's contents with `text` (as a paste would) and saves with Ctrl+S. */
async function replaceAndSave(page, file, text) {
  const editor = page.getByRole("textbox", { name: `Editor: ${file}` });
  await editor.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText(text);
  await page.getByRole("tab", { name: `${file} (unsaved)` }).waitFor();
  await page.keyboard.press("Control+S");
  await page.getByRole("tab", { name: file, exact: true }).waitFor();
}

async function check(page) {
  await page.getByRole("button", { name: "Check", exact: true }).click();
  // The progress line shows while the judge runs ("Running 1 of 2 checks…").
  await page.getByRole("button", { name: "Check", exact: true }).waitFor(SLOW);
}

const readFile = (page, sessionId, file) =>
  page.evaluate(async ([id, f]) => (await fetch(`/api/v1/sessions/${id}/files/${f}`)).text(), [sessionId, file]);

describe("lab workspace", () => {
  it("sends a signed-out visitor to the sign-in page", async () => {
    await withPage(async ({ page }) => {
      await page.goto(`/labs/${SLUG}`);
      await waitForPath(page, "/signin");
    });
  });

  it("runs a lab end to end: terminal, Check with hints, editor saves, conflicts, Lab complete, reload", { timeout: 300_000 }, async () => {
    await withPage(async ({ page }) => {
      await signUp(page);
      await page.goto(`/labs/${SLUG}`);
      await page.getByRole("heading", { level: 1, name: "Python functions: make the tests pass" }).waitFor(SLOW);
      assert.equal(await page.title(), "Python functions: make the tests pass · sandpit");
      const sessionId = await page.evaluate(async (slug) => (await (await fetch(`/api/v1/labs/${slug}/active`)).json()).id, SLUG);
      assert.match(sessionId, /^[0-9a-f-]{36}$/);

      // Steps: the first is current, rendered from Markdown with Copy / Run in terminal.
      const steps = page.getByRole("navigation", { name: "Lab steps" });
      await steps.getByRole("button", { name: /slugify: titles into URLs/ }).waitFor();
      assert.equal(await steps.getByRole("button", { name: /slugify/ }).getAttribute("aria-current"), "step");
      assert.ok((await page.getByRole("button", { name: "Copy" }).count()) > 0, "code blocks have a Copy button");
      assert.ok((await page.getByRole("button", { name: "Run in terminal" }).count()) > 0, "bash blocks can run in the terminal");

      // Terminal: a command and its output.
      await waitForTerminalLine(page, /\$\s*$/);
      await terminal(page).locator(".xterm-screen").click();
      await page.keyboard.type("echo hello-$((40+2))");
      await page.keyboard.press("Enter");
      await waitForTerminalLine(page, /^hello-42$/);

      // Check the starter: failures, each with its hint.
      await check(page);
      const results = page.getByRole("region", { name: "Check results" });
      await results.waitFor(SLOW);
      const failures = results.getByRole("list", { name: "Failures" }).getByRole("listitem");
      assert.ok((await failures.count()) >= 1, "the starter fails at least one check");
      assert.match((await results.textContent()) ?? "", /Hint:/);
      await screenshot(page, "lab-workspace-failures");

      // Fix slugify/word_count in the editor.
      await page.getByRole("button", { name: "Open text_tools.py" }).click();
      await replaceAndSave(page, "text_tools.py", solution("text_tools.py"));
      assert.equal(await readFile(page, sessionId, "text_tools.py"), solution("text_tools.py"));

      await check(page);
      await page.getByRole("status").filter({ hasText: "Passed: slugify" }).waitFor(SLOW);
      assert.equal(await steps.getByRole("button", { name: /word_count/ }).getAttribute("aria-current"), "step", "moved on to step 2");
      assert.match((await steps.getByRole("button", { name: /slugify/ }).textContent()) ?? "", /✓/);

      await check(page);
      await page.getByRole("status").filter({ hasText: "Passed: word_count" }).waitFor(SLOW);

      // The tests of step 3, in a new file made with the editor's New file action.
      await page.getByRole("button", { name: "New file" }).click();
      await page.getByLabel("New file path").fill("test_text_tools.py");
      await page.getByRole("button", { name: "Create" }).click();
      await page.getByRole("tab", { name: "test_text_tools.py" }).waitFor();
      await page.getByRole("button", { name: "Open test_text_tools.py" }).waitFor();
      await replaceAndSave(page, "test_text_tools.py", solution("test_text_tools.py"));

      await check(page);
      await page.getByRole("status").filter({ hasText: "Lab complete" }).waitFor(SLOW);
      await screenshot(page, "lab-workspace-complete");

      // A conflict: the file changes underneath (through the API), then the editor saves.
      await page.getByRole("tab", { name: "text_tools.py", exact: true }).click();
      const status = await page.evaluate(
        async ([id]) => (await fetch(`/api/v1/sessions/${id}/files/text_tools.py`, { method: "PUT", body: "# changed elsewhere\n" })).status,
        [sessionId],
      );
      assert.equal(status, 200);
      await page.getByRole("textbox", { name: "Editor: text_tools.py" }).click();
      await page.keyboard.press("Control+End");
      await page.keyboard.type("# mine");
      await page.keyboard.press("Control+S");
      const conflict = page.getByRole("alert").filter({ hasText: "This file changed on disk since you opened it" });
      await conflict.waitFor();
      assert.equal(await readFile(page, sessionId, "text_tools.py"), "# changed elsewhere\n", "nothing was overwritten");
      await conflict.getByRole("button", { name: "Reload" }).click();
      await conflict.waitFor({ state: "detached" });
      await page.getByRole("textbox", { name: "Editor: text_tools.py" }).filter({ hasText: /^# changed elsewhere$/ }).waitFor();
      await page.getByRole("tab", { name: "text_tools.py", exact: true }).waitFor();

      // Keyboard resize of the terminal panel.
      const handle = page.getByRole("separator", { name: "Resize the terminal" });
      const before = Number(await handle.getAttribute("aria-valuenow"));
      await handle.focus();
      await page.keyboard.press("ArrowUp");
      assert.equal(Number(await handle.getAttribute("aria-valuenow")), before + 16);

      // The screen and step panel as a learner sees them at the end.
      assert.ok(await page.getByRole("button", { name: "Hint" }).isVisible());

      // Reload: the same session, the terminal's screen restored, the lab still complete.
      await page.reload();
      await page.getByRole("status").filter({ hasText: "Lab complete" }).waitFor(SLOW);
      await waitForTerminalLine(page, /^hello-42$/);

      // The catalog shows the lab complete.
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Labs" }).click();
      const labs = page.getByRole("list", { name: "Labs" });
      const card = labs.getByRole("listitem").filter({
        has: page.getByRole("heading", { level: 2, name: "Python functions: make the tests pass", exact: true }),
      });
      await card.waitFor(SLOW);
      assert.match((await card.getByTestId("progress").textContent()) ?? "", /Completed/);

      // And a program runs in the playground.
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Playground" }).click();
      await pythonProgram(page, "print(sum(range(10)))");
      await page.getByRole("button", { name: "Run", exact: true }).click();
      const run = page.getByRole("region", { name: "Run", exact: true });
      await run.getByLabel("stdout").filter({ hasText: "45" }).waitFor(SLOW);
    });
  });

  it("gives hints with their source, explains, rate-limits, runs step commands, and ends the session", { timeout: 180_000 }, async () => {
    await withPage(async ({ page }) => {
      await signUp(page);
      await page.goto(`/labs/${SLUG}`);
      await page.getByRole("heading", { level: 1, name: "Python functions: make the tests pass" }).waitFor(SLOW);

      // Narrow: the panels stack (steps above the editor above the terminal).
      await page.setViewportSize({ width: 700, height: 900 });
      const top = async (name) => (await page.getByRole("region", { name, exact: true }).boundingBox())?.y ?? -1;
      const [stepsY, editorY, terminalY] = [await top("Steps"), await top("Editor"), await top("Terminal")];
      assert.ok(stepsY < editorY && editorY < terminalY, `stacked: steps ${stepsY}, editor ${editorY}, terminal ${terminalY}`);
      await screenshot(page, "lab-workspace-narrow");
      await page.setViewportSize({ width: 1280, height: 800 });

      // "Run in terminal" types a step's shell command and runs it.
      await waitForTerminalLine(page, /\$\s*$/);
      await page.getByRole("button", { name: "Next step" }).click();
      await page.getByRole("button", { name: "Next step" }).click();
      assert.equal(await page.getByRole("navigation", { name: "Lab steps" }).getByRole("button", { name: /Tests of your own/ }).getAttribute("aria-current"), "step");
      await page.getByRole("button", { name: "Run in terminal" }).first().click();
      await waitForTerminalLine(page, /python3 -m unittest -v$/);
      await page.getByRole("button", { name: "Previous step" }).click();
      await page.getByRole("button", { name: "Previous step" }).click();

      // Hint: the lab's own hints (no AI provider here), gentlest first, with where it came from.
      await page.getByRole("button", { name: "Hint" }).click();
      const answer = page.getByRole("region", { name: "Hint" });
      await answer.waitFor();
      assert.match((await answer.textContent()) ?? "", /Read the failing cases one by one/);
      assert.match((await answer.textContent()) ?? "", /From the lab's hints, 1 of 3/);

      // Explain a topic; then the limit (2 a minute) answers with a readable wait.
      await page.getByRole("button", { name: "Explain…" }).click();
      await page.getByLabel("What to explain").fill("regular expressions");
      await page.getByRole("button", { name: "Explain", exact: true }).click();
      await page.getByRole("button", { name: "Explain", exact: true }).waitFor();
      await page.getByRole("button", { name: "Hint" }).click();
      const limited = page.getByRole("alert").filter({ hasText: /Too many requests — try again in \d+ s/ });
      await limited.waitFor();

      // Extend: the session's expiry moves on (never back), shown without an error.
      const sessionId = await page.evaluate(async (slug) => (await (await fetch(`/api/v1/labs/${slug}/active`)).json()).id, SLUG);
      const expiry = async () => Date.parse(await page.evaluate(async (id) => (await (await fetch(`/api/v1/sessions/${id}`)).json()).expires_at, sessionId));
      const beforeExtend = await expiry();
      await page.getByRole("button", { name: "Extend" }).click();
      await page.getByRole("button", { name: "Extend" }).and(page.locator(":enabled")).waitFor();
      assert.ok((await expiry()) >= beforeExtend, "Extend never shortens");
      assert.match((await page.getByRole("group", { name: "Session" }).textContent()) ?? "", /Time left \d+:\d\d/);

      // End session: confirmed, then back to the catalog; the session is over.
      page.once("dialog", (dialog) => dialog.accept());
      await page.getByRole("button", { name: "End session" }).click();
      await waitForPath(page, "/labs");
      const ended = await page.evaluate(async (id) => (await (await fetch(`/api/v1/sessions/${id}`)).json()).status, sessionId);
      assert.equal(ended, "ended");
    });
  });

  it("reconnects the terminal by itself after the connection drops, with its screen", { timeout: 120_000 }, async () => {
    await withPage(async ({ page }) => {
      // Keep a handle on the page's WebSockets, so the test can cut the terminal's connection
      // (as a network drop or a proxy timeout would).
      await page.addInitScript(() => {
        const Native = window.WebSocket;
        window.__sockets = [];
        window.WebSocket = class extends Native {
          constructor(...args) {
            super(...args);
            window.__sockets.push(this);
          }
        };
      });
      await signUp(page);
      await page.goto(`/labs/${SLUG}`);
      await waitForTerminalLine(page, /\$\s*$/);
      await terminal(page).locator(".xterm-screen").click();
      await page.keyboard.type("echo before-$((1+1))");
      await page.keyboard.press("Enter");
      await waitForTerminalLine(page, /^before-2$/);
      const opened = await page.evaluate(() => window.__sockets.length);
      await page.evaluate(() => window.__sockets.at(-1).close(4000, "dropped by the test"));
      // A new connection comes by itself, and the screen is back (the snapshot redraws it).
      await page.waitForFunction((n) => window.__sockets.length > n && window.__sockets.at(-1).readyState === 1, opened, SLOW);
      await waitForTerminalLine(page, /^before-2$/);
      await terminal(page).locator(".xterm-screen").click();
      await page.keyboard.type("echo after-$((2+2))");
      await page.keyboard.press("Enter");
      await waitForTerminalLine(page, /^after-4$/);
    });
  });

  it("renames and deletes files from the tree", { timeout: 120_000 }, async () => {
    await withPage(async ({ page }) => {
      await signUp(page);
      await page.goto(`/labs/${SLUG}`);
      await page.getByRole("button", { name: "Open README.md" }).click(SLOW);
      await page.getByRole("tab", { name: "README.md", exact: true }).waitFor();
      page.once("dialog", (dialog) => dialog.accept("docs/NOTES.md"));
      await page.getByRole("button", { name: "Rename README.md" }).click();
      // The open tab follows the file to its new name.
      await page.getByRole("tab", { name: "docs/NOTES.md", exact: true }).waitFor();
      await page.getByRole("button", { name: "Open docs/NOTES.md" }).waitFor();
      assert.equal(await page.getByRole("button", { name: "Open README.md" }).count(), 0);

      page.once("dialog", (dialog) => dialog.accept());
      await page.getByRole("button", { name: "Delete docs/NOTES.md" }).click();
      await page.getByRole("button", { name: "Open docs/NOTES.md" }).waitFor({ state: "detached" });
      assert.equal(await page.getByRole("tab", { name: "docs/NOTES.md", exact: true }).count(), 0);
      const listed = await page.evaluate(async () => {
        const id = (await (await fetch("/api/v1/labs/python-functions/active")).json()).id;
        return (await (await fetch(`/api/v1/sessions/${id}/files`)).json()).entries.map((e) => e.path);
      });
      assert.ok(!listed.includes("README.md") && !listed.includes("docs/NOTES.md"), listed.join(", "));
    });
  });

  it("asks before leaving the page with unsaved edits", { timeout: 120_000 }, async () => {
    await withPage(async ({ page }) => {
      await signUp(page);
      await page.goto(`/labs/${SLUG}`);
      await page.getByRole("button", { name: "Open text_tools.py" }).click(SLOW);
      const editor = page.getByRole("textbox", { name: "Editor: text_tools.py" });
      await editor.click();
      await page.keyboard.insertText("# not saved yet\n");
      await page.getByRole("tab", { name: "text_tools.py (unsaved)" }).waitFor();
      const asked = new Promise((resolve) => {
        page.once("dialog", async (dialog) => {
          resolve(dialog.type());
          await dialog.dismiss();
        });
      });
      // Dismissed: the page stays, the edit with it.
      await page.evaluate(() => window.location.reload()).catch(() => undefined);
      assert.equal(await asked, "beforeunload");
      await page.getByRole("tab", { name: "text_tools.py (unsaved)" }).waitFor();
    });
  });

  it("shows an ended session clearly and starts again", { timeout: 120_000 }, async () => {
    await withPage(async ({ page }) => {
      await signUp(page);
      await page.goto(`/labs/${SLUG}`);
      await page.getByRole("button", { name: "Check", exact: true }).waitFor(SLOW);
      const sessionId = await page.evaluate(async (slug) => (await (await fetch(`/api/v1/labs/${slug}/active`)).json()).id, SLUG);
      const status = await page.evaluate(async (id) => (await fetch(`/api/v1/sessions/${id}`, { method: "DELETE" })).status, sessionId);
      assert.equal(status, 204);

      await page.getByRole("button", { name: "Check", exact: true }).click();
      await page.getByRole("alert").filter({ hasText: "This session has ended" }).waitFor(SLOW);
      await page.getByRole("button", { name: "Start again" }).click();
      await page.getByRole("button", { name: "Check", exact: true }).waitFor(SLOW);
      const fresh = await page.evaluate(async (slug) => (await (await fetch(`/api/v1/labs/${slug}/active`)).json()).id, SLUG);
      assert.notEqual(fresh, sessionId, "a new session was started");
      await waitForTerminalLine(page, /\$\s*$/);
    });
  });
});
