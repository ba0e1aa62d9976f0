// The lab catalog: the built-in labs with progress, the tag filter, and a lab completed through
// the API showing as completed, in a real Chromium against the real server.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, screenshot, uniqueUsername, waitForPath } from "./support/browser.mjs";
import { repoDir, startServer } from "./support/server.mjs";

const labsDir = path.join(repoDir, "crates/sandpit-labs/labs");

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;
/** Every built-in lab's slug and title, read from the lab folders (not from the API under test). */
let builtIn;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  builtIn = [];
  for (const slug of await readdir(labsDir)) {
    const toml = await readFile(path.join(labsDir, slug, "lab.toml"), "utf8");
    const field = (name) => new RegExp(`^${name} = "(.*)"$`, "m").exec(toml)?.[1];
    const tags = /^tags = \[(.*)\]$/m.exec(toml)?.[1].match(/"[^"]*"/g)?.map((t) => t.slice(1, -1)) ?? [];
    builtIn.push({ slug: field("slug"), title: field("title"), tags });
  }
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function withSignedInPage(fn) {
  const session = await openPage(browser, server.baseURL);
  try {
    const signup = await session.context.request.post("/api/v1/auth/signup", {
      data: { username: uniqueUsername("cat"), password: "correct horse battery" },
    });
    assert.equal(signup.status(), 201);
    await fn(session);
    assert.deepEqual(session.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    error.message += `\n${server.logs()}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

const labList = (page) => page.getByRole("list", { name: "Labs" });
const cardTitles = async (page) => (await labList(page).getByRole("heading", { level: 2 }).allTextContents()).map((t) => t.trim());
const card = (page, title) => labList(page).getByRole("listitem").filter({ has: page.getByRole("heading", { level: 2, name: title, exact: true }) });

describe("catalog", () => {
  it("lists the six built-in labs with no progress, and filters by tag", async () => {
    await withSignedInPage(async ({ page }) => {
      assert.equal(builtIn.length, 6, "six built-in lab folders");
      await page.goto("/");
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Labs" }).click();
      await waitForPath(page, "/labs");
      await page.getByRole("heading", { level: 1, name: "Labs" }).waitFor();
      await labList(page).waitFor();
      assert.equal(await page.title(), "Labs · sandpit");
      assert.equal(
        await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Labs" }).getAttribute("aria-current"),
        "page",
      );

      assert.deepEqual((await cardTitles(page)).sort(), builtIn.map((l) => l.title).sort());
      for (const lab of builtIn) {
        const c = card(page, lab.title);
        assert.match((await c.getByTestId("progress").textContent()) ?? "", /^0 of \d+ steps$/, lab.slug);
        const start = c.getByRole("link", { name: `Start ${lab.title}` });
        assert.equal(await start.getAttribute("href"), `/labs/${lab.slug}`);
      }
      await screenshot(page, "catalog");

      // Keyboard: focus the tag button and press Enter.
      const docker = page.getByRole("group", { name: "Filter by tag" }).getByRole("button", { name: "docker", exact: true });
      await docker.focus();
      await page.keyboard.press("Enter");
      assert.equal(await docker.getAttribute("aria-pressed"), "true", "the active filter is visible");
      const dockerLabs = builtIn.filter((l) => l.tags.includes("docker")).map((l) => l.title);
      assert.equal(dockerLabs.length, 3);
      await page.waitForFunction((n) => document.querySelectorAll("[aria-label=Labs] > li").length === n, dockerLabs.length);
      assert.deepEqual((await cardTitles(page)).sort(), dockerLabs.sort());
      assert.equal(new URL(page.url()).searchParams.get("tag"), "docker", "the filter is in the URL");
      await screenshot(page, "catalog-docker");

      // The filter survives a reload; "All" clears it.
      await page.reload();
      await labList(page).waitFor();
      assert.deepEqual((await cardTitles(page)).sort(), dockerLabs.sort());
      const all = page.getByRole("button", { name: "All", exact: true });
      await all.click();
      assert.equal(await all.getAttribute("aria-pressed"), "true");
      assert.equal(await docker.getAttribute("aria-pressed"), "false");
      assert.equal((await cardTitles(page)).length, 6);
    });
  });

  it("shows a lab completed through the API as Completed", async () => {
    await withSignedInPage(async ({ page }) => {
      const solutionDir = path.join(labsDir, "shell-basics/solution");
      const files = [];
      for (const entry of await readdir(solutionDir, { recursive: true, withFileTypes: true })) {
        if (!entry.isFile()) continue;
        const full = path.join(entry.parentPath, entry.name);
        files.push({ path: path.relative(solutionDir, full), content: await readFile(full, "utf8") });
      }
      assert.ok(files.some((f) => f.path === "greet.sh"));

      await page.goto("/labs");
      await labList(page).waitFor();
      const title = builtIn.find((l) => l.slug === "shell-basics").title;
      assert.match((await card(page, title).getByTestId("progress").textContent()) ?? "", /^0 of 3 steps$/);

      const verdicts = await page.evaluate(async (solution) => {
        const json = { "Content-Type": "application/json" };
        const started = await fetch("/api/v1/labs/shell-basics/start", { method: "POST", headers: json, body: "{}" });
        if (!started.ok) throw new Error(`start: ${started.status} ${await started.text()}`);
        const { session } = await started.json();
        const base = `/api/v1/sessions/${session.id}`;
        for (const file of solution) {
          const put = await fetch(`${base}/files/${file.path.split("/").map(encodeURIComponent).join("/")}`, {
            method: "PUT",
            body: file.content,
          });
          if (!put.ok) throw new Error(`put ${file.path}: ${put.status} ${await put.text()}`);
        }
        // The files API does not carry the executable bit; the learner would chmod in the terminal.
        const chmod = await fetch(`${base}/exec`, { method: "POST", headers: json, body: JSON.stringify({ argv: ["chmod", "+x", "greet.sh"] }) });
        if (!chmod.ok) throw new Error(`chmod: ${chmod.status} ${await chmod.text()}`);
        const passed = [];
        for (const step of ["files", "grep", "script"]) {
          const judged = await fetch(`${base}/judge`, { method: "POST", headers: json, body: JSON.stringify({ step }) });
          if (!judged.ok) throw new Error(`judge ${step}: ${judged.status} ${await judged.text()}`);
          const attempt = await judged.json();
          passed.push([step, attempt.passed, attempt.failures.map((f) => f.message).join("; ")]);
        }
        return passed;
      }, files);
      for (const [step, passed, failures] of verdicts) assert.equal(passed, true, `step ${step}: ${failures}`);

      await page.reload();
      await labList(page).waitFor();
      const done = card(page, title);
      assert.equal((await done.getByTestId("progress").textContent())?.trim(), "Completed ✓");
      assert.equal(await done.getByRole("link", { name: `Review ${title}` }).getAttribute("href"), "/labs/shell-basics");
      // The others are untouched.
      const other = builtIn.find((l) => l.slug === "python-functions");
      assert.match((await card(page, other.title).getByTestId("progress").textContent()) ?? "", /^0 of \d+ steps$/);
      await screenshot(page, "catalog-completed");
    });
  });
});
