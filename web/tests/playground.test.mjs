// The playground: run Python with stdin, test cases that pass and fail, and a time limit, in a
// real Chromium against the real server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openPage, screenshot, uniqueUsername } from "./support/browser.mjs";
import { pythonProgram } from "./support/playground.mjs";
import { serverAndBrowser } from "./support/suite.mjs";

const suite = serverAndBrowser();

async function withSignedInPage(fn, options = {}) {
  const session = await openPage(suite.browser, suite.server.baseURL, options);
  try {
    const signup = await session.context.request.post("/api/v1/auth/signup", {
      data: { username: uniqueUsername("pg"), password: "correct horse battery" },
    });
    assert.equal(signup.status(), 201);
    await fn(session);
    assert.deepEqual(session.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    error.message += `\n${suite.server.logs()}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

const stage = (page, name) => page.getByRole("region", { name, exact: true });

async function runAndWait(page) {
  // Hold the request so the pending state is observable, then let it through. The answer is
  // read where it passes through the route (not from the network log afterwards, whose body
  // can be gone by the time it is asked for).
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  let answered;
  const result = new Promise((resolve) => (answered = resolve));
  await page.route("**/api/v1/runs", async (route) => {
    await gate;
    const response = await route.fetch();
    answered(await response.json());
    await route.fulfill({ response });
  });
  await page.getByRole("button", { name: "Run", exact: true }).click();
  const pending = page.getByRole("button", { name: "Running…" });
  await pending.waitFor();
  assert.equal(await pending.isDisabled(), true, "Run is disabled while running");
  release();
  const body = await result;
  await page.getByRole("button", { name: "Run", exact: true }).waitFor();
  await page.unroute("**/api/v1/runs");
  return body;
}

describe("playground", () => {
  it("runs Python with stdin and shows stdout, status, time and memory", async () => {
    await withSignedInPage(async ({ page }) => {
      await page.goto("/playground");
      await page.getByRole("heading", { level: 1, name: "Playground" }).waitFor();
      assert.equal(await page.title(), "Playground · sandpit");
      await pythonProgram(page, "print(input()[::-1])");
      await page.getByLabel("Standard input").fill("sandpit rocks");

      const result = await runAndWait(page);
      assert.equal(result.run.status, "ok", JSON.stringify(result));
      const run = stage(page, "Run");
      await run.waitFor();
      assert.equal((await run.getByTestId("status").textContent())?.trim(), "OK");
      assert.equal((await run.getByLabel("stdout").textContent())?.trim(), "skcor tipdnas");
      assert.equal((await run.getByTestId("exit-code").textContent())?.trim(), "0");
      assert.match((await run.getByTestId("time").textContent()) ?? "", /^\d+ ms wall, \d+ ms CPU$/);
      assert.match((await run.getByTestId("memory").textContent()) ?? "", /^\d+(\.\d)? (KB|MB)$/);
      assert.notEqual(result.run.memory_kb, 0, "the server measured memory");
      await screenshot(page, "playground-run");
    });
  });

  it("marks a passing and a failing test case", async () => {
    await withSignedInPage(async ({ page }) => {
      await page.goto("/playground");
      await pythonProgram(page, "print(input()[::-1])");
      await page.getByRole("button", { name: "Add test case" }).click();
      await page.getByRole("button", { name: "Add test case" }).click();
      await page.getByLabel("Test 1 input").fill("abc");
      await page.getByLabel("Test 1 expected output").fill("cba");
      await page.getByLabel("Test 2 input").fill("xyz");
      await page.getByLabel("Test 2 expected output").fill("xyz");

      const result = await runAndWait(page);
      assert.deepEqual(
        result.tests.map((t) => t.passed),
        [true, false],
      );
      assert.equal((await stage(page, "Test 1").getByTestId("verdict").textContent())?.trim(), "Passed");
      assert.equal((await stage(page, "Test 2").getByTestId("verdict").textContent())?.trim(), "Failed");
      assert.equal((await stage(page, "Test 2").getByLabel("stdout").textContent())?.trim(), "zyx");
      await screenshot(page, "playground-tests");
    });
  });

  it("shows the time-limit status for an endless loop with a 1 s limit", async () => {
    await withSignedInPage(async ({ page }) => {
      await page.goto("/playground");
      await pythonProgram(page, "while True:\n    pass\n");
      await page.getByLabel("Time limit (s)").fill("1");
      const result = await runAndWait(page);
      assert.equal(result.run.status, "time_limit");
      const run = stage(page, "Run");
      assert.equal((await run.getByTestId("status").textContent())?.trim(), "Time limit exceeded");
      await screenshot(page, "playground-time-limit");
    });
  });

  it("shows the server's message, not JSON, for a limit above the maximum", async () => {
    await withSignedInPage(async ({ page }) => {
      await page.goto("/playground");
      await pythonProgram(page, "print(1)");
      await page.getByLabel("Memory limit (MB)").fill("999999");
      const answered = page.waitForResponse((r) => r.url().endsWith("/api/v1/runs"));
      await page.getByRole("button", { name: "Run", exact: true }).click();
      const response = await answered;
      assert.equal(response.status(), 422);
      const { error } = await response.json();
      const alert = page.getByRole("alert");
      await alert.waitFor();
      assert.equal((await alert.textContent())?.trim(), error.message);
      assert.doesNotMatch(await page.locator("main").innerText(), /"error"|"code"/);
    });
  });

  it("is usable at 390 px: files can be added, renamed and removed by keyboard", async () => {
    await withSignedInPage(
      async ({ page }) => {
        await page.goto("/playground");
        await pythonProgram(page, "import helper\nhelper.hi()");
        await page.getByRole("button", { name: "Add file" }).click();
        await page.getByLabel("File name").fill("helper.py");
        await page.getByLabel("Contents of helper.py").fill('def hi():\n    print("hi from helper")\n');
        const tabs = page.getByRole("tab");
        assert.equal(await tabs.count(), 2);
        await page.getByRole("tab", { name: "helper.py" }).focus();
        await page.keyboard.press("ArrowLeft");
        assert.equal(await page.getByRole("tab", { name: /main\.py/ }).getAttribute("aria-selected"), "true");

        const result = await runAndWait(page);
        assert.equal(result.run.stdout.trim(), "hi from helper", JSON.stringify(result));
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `no horizontal scrolling at 390 px (overflow ${overflow})`);
        await screenshot(page, "playground-narrow");

        await page.getByRole("tab", { name: "helper.py" }).click();
        await page.getByRole("button", { name: "Remove file" }).click();
        assert.equal(await tabs.count(), 1);
      },
      { viewport: { width: 390, height: 844 } },
    );
  });
});
