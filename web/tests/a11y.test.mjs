// Basic accessibility on every page: each control (button, link, field, select) has an
// accessible name (the database viewer also with a table's rows and a refused write shown),
// and the lab workspace, a project and an app are reachable by keyboard alone
// (Tab gets to the steps, the file tree, the editor, the terminal, Check and Hint; on a project
// to the files, the editor and the job panel's fields; on an app to Stop, the deploy form, the
// log and the variables).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openPage, uniqueUsername } from "./support/browser.mjs";
import { serverAndBrowser } from "./support/suite.mjs";

const suite = serverAndBrowser();

/** Controls on the page without an accessible name, described for the failure message. */
function unnamedControls(page) {
  return page.evaluate(() => {
    const controls = document.querySelectorAll("button, a[href], input:not([type=hidden]), select, textarea, [role=button], [role=tab], [role=textbox], [role=separator][tabindex]");
    const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
    const nameOf = (el) => {
      const labelledBy = el.getAttribute("aria-labelledby");
      if (labelledBy) {
        const text = labelledBy.split(/\s+/).map((id) => document.getElementById(id)?.textContent ?? "").join(" ");
        if (text.trim()) return text;
      }
      if (el.getAttribute("aria-label")?.trim()) return el.getAttribute("aria-label");
      if ("labels" in el && el.labels?.length) return [...el.labels].map((l) => l.textContent).join(" ");
      if (el.getAttribute("title")?.trim()) return el.getAttribute("title");
      if (["BUTTON", "A"].includes(el.tagName) || el.getAttribute("role") === "button" || el.getAttribute("role") === "tab") {
        return (el.textContent ?? "").trim() || [...el.querySelectorAll("img[alt]")].map((i) => i.alt).join(" ");
      }
      return "";
    };
    return [...controls]
      .filter((el) => visible(el) && !el.closest(".xterm-helpers"))
      .filter((el) => !String(nameOf(el)).trim())
      .map((el) => el.outerHTML.slice(0, 160));
  });
}

describe("accessibility", () => {
  it("names every control on every page and reaches the workspace by keyboard", { timeout: 180_000 }, async () => {
    const { context, page, errors } = await openPage(suite.browser, suite.server.baseURL);
    try {
      for (const path of ["/signin", "/signup"]) {
        await page.goto(path);
        await page.getByRole("heading", { level: 1 }).waitFor();
        assert.deepEqual(await unnamedControls(page), [], `unnamed controls on ${path}`);
      }
      const signup = await context.request.post("/api/v1/auth/signup", {
        data: { username: uniqueUsername("a11y"), password: "correct horse battery" },
      });
      assert.equal(signup.status(), 201);
      for (const [path, ready] of [
        ["/", "Browse the labs →"],
        ["/labs", "All"],
        ["/playground", "Run"],
        ["/sessions", null],
        ["/projects", "Create project"],
        ["/apps", "Create app"],
        ["/database", "Create database"],
        ["/account", null],
      ]) {
        await page.goto(path);
        await page.getByRole("heading", { level: 1 }).waitFor();
        if (ready) await page.getByRole(path === "/" ? "link" : "button", { name: ready, exact: true }).first().waitFor();
        assert.deepEqual(await unnamedControls(page), [], `unnamed controls on ${path}`);
      }

      // A project's page: files, editor and the agent jobs panel, with a job that failed (this
      // server has no language model), all named and reachable by Tab.
      const created = await context.request.post("/api/v1/projects", { data: { name: "A11y", template: "python" } });
      assert.equal(created.status(), 201);
      const project = (await created.json()).id;
      await page.goto(`/projects/${project}`);
      await page.getByRole("heading", { level: 1, name: "A11y" }).waitFor();
      await page.getByRole("button", { name: "Open main.py" }).click();
      await page.getByRole("textbox", { name: "Editor: main.py" }).waitFor();
      await page.getByLabel("Request").fill("Anything");
      await page.getByRole("button", { name: "Start job" }).click();
      await page.getByRole("status").filter({ hasText: "Code job failed" }).waitFor({ timeout: 30_000 });
      await page.getByRole("table", { name: "Jobs of this project" }).getByText("llm_not_configured").waitFor();
      const progress = page.getByRole("progressbar", { name: "Progress of the code job" });
      assert.match((await progress.getAttribute("aria-valuenow")) ?? "", /^\d+$/, "the progress bar says its value");
      assert.deepEqual(await unnamedControls(page), [], "unnamed controls on a project");
      await page.locator("body").focus();
      const onProject = new Set();
      for (let i = 0; i < 80 && onProject.size < 5; i += 1) {
        await page.keyboard.press("Tab");
        const where = await page.evaluate(() => {
          const el = document.activeElement;
          if (!el) return "";
          if (el.closest(".cm-editor")) return "editor";
          if (el.id === "job-kind") return "kind";
          if (el.id === "job-prompt") return "request";
          const name = (el.getAttribute("aria-label") ?? el.textContent ?? "").trim();
          if (/^Open main\.py$/.test(name)) return "files";
          if (/^Start job$/.test(name)) return "start";
          return "";
        });
        if (where) onProject.add(where);
      }
      assert.deepEqual([...onProject].sort(), ["editor", "files", "kind", "request", "start"], "reached by Tab on a project");

      // An app's page after a deploy that failed (fast, and it shows the most: the stepper's
      // failed stage, the error and its log lines), all named; Tab reaches the deploy form,
      // Stop, the log and the editors.
      const app = await context.request.post("/api/v1/apps", { data: { name: "a11y", runtime: "python" } });
      assert.equal(app.status(), 201);
      const appId = (await app.json()).id;
      const deployed = await context.request.post(`/api/v1/apps/${appId}/deploy`, { data: { files: { "main.py": "def broken(:\n" } } });
      assert.equal(deployed.status(), 202);
      await page.goto(`/apps/${appId}`);
      await page.getByRole("heading", { level: 1, name: "a11y" }).waitFor();
      await page.getByRole("status").filter({ hasText: "Version 1 failed at validating." }).waitFor({ timeout: 30_000 });
      await page.getByLabel("Deploy from").waitFor();
      await page.getByRole("button", { name: "Add variable" }).click();
      await page.getByRole("button", { name: "Add secret" }).click();
      assert.equal(await page.locator('[aria-current="step"]').count(), 1, "the stepper marks one step");
      assert.deepEqual(await unnamedControls(page), [], "unnamed controls on an app");
      await page.locator("body").focus();
      const onApp = new Set();
      for (let i = 0; i < 80 && onApp.size < 5; i += 1) {
        await page.keyboard.press("Tab");
        const where = await page.evaluate(() => {
          const el = document.activeElement;
          if (!el) return "";
          if (el.id === "deploy-source") return "source";
          if (el.getAttribute("role") === "log") return "log";
          if (el.id.startsWith("variables-name-")) return "variable";
          const name = (el.textContent ?? "").trim();
          if (name === "Stop app") return "stop";
          if (name === "Deploy") return "deploy";
          return "";
        });
        if (where) onApp.add(where);
      }
      assert.deepEqual([...onApp].sort(), ["deploy", "log", "source", "stop", "variable"], "reached by Tab on an app");

      // The database viewer with a table chosen, a page of its rows, and a write refused with
      // the offer to run it in write mode: all named.
      assert.equal((await context.request.post("/api/v1/database")).status(), 201);
      for (const sql of ["CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)", "INSERT INTO notes (text) VALUES ('a'), (NULL)"]) {
        const wrote = await context.request.post("/api/v1/database/query", { data: { sql, write: true } });
        assert.equal(wrote.status(), 200, await wrote.text());
      }
      await page.goto("/database");
      await page.getByRole("button", { name: "notes" }).click();
      await page.getByRole("table", { name: "Rows of notes" }).waitFor();
      await page.getByLabel("SQL statement").fill("DELETE FROM notes");
      await page.getByRole("button", { name: "Run", exact: true }).click();
      await page.getByRole("button", { name: "Run in write mode…" }).waitFor();
      assert.deepEqual(await unnamedControls(page), [], "unnamed controls on the database viewer");

      await page.goto("/labs/shell-basics");
      await page.getByRole("button", { name: "Check" }).waitFor({ timeout: 60_000 });
      await page.getByRole("region", { name: "Terminal" }).locator(".xterm-rows").waitFor();
      assert.deepEqual(await unnamedControls(page), [], "unnamed controls on the workspace");

      // Keyboard only: Tab from the top of the page reaches each part of the workspace.
      await page.locator("body").focus();
      const reached = new Set();
      for (let i = 0; i < 120 && reached.size < 5; i += 1) {
        await page.keyboard.press("Tab");
        const where = await page.evaluate(() => {
          const el = document.activeElement;
          if (!el) return "";
          if (el.closest(".xterm")) return "terminal";
          if (el.closest(".cm-editor")) return "editor";
          const name = el.getAttribute("aria-label") ?? el.textContent ?? "";
          if (el.closest("[aria-label='Files'], nav[aria-label='Files']") || /^Refresh|^New file/.test(name)) return "files";
          if (/^Check$/.test(name.trim())) return "check";
          if (/^Hint$/.test(name.trim())) return "hint";
          return "";
        });
        if (where) reached.add(where);
        // Leaving the terminal takes Escape then Tab (Tab alone completes in the shell).
        if (where === "terminal") await page.keyboard.press("Escape");
      }
      assert.ok(["files", "check", "hint"].every((p) => reached.has(p)), `reached by Tab: ${[...reached].join(", ")}`);
      assert.deepEqual(errors.map(String), [], "uncaught errors in the page");
    } catch (error) {
      error.message += `\n${suite.server.logs()}`;
      throw error;
    } finally {
      await context.close();
    }
  });
});
