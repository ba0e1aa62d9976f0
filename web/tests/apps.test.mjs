// Apps (/apps, /apps/<id>, "Deploy as app") in a real Chromium against the real server: a
// FastAPI app written in the playground, deployed with its stages followed live, served through
// the platform's proxy, its request in the log, stopped, started and deleted; a deploy that fails
// validation with the file and line; another user kept out; deploying from a project, rolling
// back, variables, secrets and visibility; and "Deploy as app" from a lab's session.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, screenshot, uniqueUsername, waitForPath } from "./support/browser.mjs";
import { pythonProgram } from "./support/playground.mjs";
import { startServer } from "./support/server.mjs";

const PASSWORD = "correct horse battery";
const SLOW = { timeout: 60_000 };
const FASTAPI = 'from fastapi import FastAPI\napp = FastAPI()\n@app.get("/")\ndef root():\n    return {"message": "hello from sandpit"}\n';
const ANSWER = '{"message":"hello from sandpit"}';
const APP_PATH = /^\/apps\/([0-9a-f-]{36})$/;

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function withPage(name, fn) {
  const session = await openPage(browser, server.baseURL);
  try {
    await fn(session);
    assert.deepEqual(session.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    await screenshot(session.page, `apps-${name}-failure`).catch(() => undefined);
    error.message += `\n${server.logs()}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

/** Signs up through the API (the context's cookie); the page is then signed in. */
async function signUpApi(context, prefix = "a") {
  const username = uniqueUsername(prefix);
  const response = await context.request.post("/api/v1/auth/signup", { data: { username, password: PASSWORD } });
  assert.equal(response.status(), 201);
  return username;
}

/** In the playground: the program in main.py, then "Deploy as app" as `name`; ends on the app's page. */
async function deployFromPlayground(page, code, name) {
  await page.goto("/playground");
  await pythonProgram(page, code);
  await page.getByRole("button", { name: "Deploy as app" }).click();
  const dialog = page.getByRole("dialog", { name: "Deploy as an app" });
  await dialog.waitFor();
  await dialog.getByLabel("App name").fill(name);
  await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.waitForURL((url) => APP_PATH.test(url.pathname), SLOW);
  await page.getByRole("heading", { level: 1, name }).waitFor(SLOW);
  return APP_PATH.exec(new URL(page.url()).pathname)[1];
}

const stepper = (page, version) => page.getByRole("list", { name: `Stages of version ${version}'s deploy` });

/** Waits for the deploy's live status to say `text` (`Version 1 deployed: healthy.`). */
const deployStatus = (page, text) => page.getByRole("status").filter({ hasText: text }).waitFor(SLOW);

/** Waits for the app's state (its own live region, named "State") to read `state`. */
const stateIs = (page, state) => page.getByRole("status", { name: /^State/ }).filter({ hasText: new RegExp(`^${state}`) }).waitFor(SLOW);

/** Each step of the stepper as `name:state`, the current one starred. */
const stepsOf = (page, version) =>
  stepper(page, version)
    .getByRole("listitem")
    .evaluateAll((items) =>
      items.map((li) => `${li.querySelector(".step__name").textContent}:${li.querySelector(".step__state").textContent}${li.getAttribute("aria-current") === "step" ? "*" : ""}`),
    );

/** The row of `version` in the versions table. */
const versionRow = (page, version) =>
  page.getByRole("table", { name: "Versions" }).getByRole("row").filter({ has: page.getByRole("rowheader", { name: String(version), exact: true }) });

const logLines = (page) => page.getByRole("log", { name: "App log" }).locator(".log__line").allTextContents();

describe("apps", () => {
  it("deploys a FastAPI app from the playground, serves it, logs the request, stops, starts and deletes it", { timeout: 240_000 }, async () => {
    await withPage("lifecycle", async ({ page, context }) => {
      const username = uniqueUsername("a");
      await page.goto("/signup");
      await page.getByLabel("Username").fill(username);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign up" }).click();
      await waitForPath(page, "/");

      // The dialog: focus in the name field, Python guessed from main.py.
      await page.goto("/playground");
      await pythonProgram(page, FASTAPI);
      await page.getByRole("button", { name: "Deploy as app" }).click();
      const dialog = page.getByRole("dialog", { name: "Deploy as an app" });
      await dialog.waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.id), "deploy-app-name");
      await dialog.getByText("Guessed from the files.").waitFor();
      assert.equal(await dialog.getByLabel("Runtime").inputValue(), "python");
      // A name that is no DNS label is explained, not sent.
      await dialog.getByLabel("App name").fill("Hello App");
      await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
      assert.match((await dialog.getByRole("alert").textContent()) ?? "", /lowercase letters/);
      assert.equal((await (await context.request.get("/api/v1/apps")).json()).apps.length, 0, "nothing was created");
      await dialog.getByLabel("App name").fill("hello");
      await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
      await page.waitForURL((url) => APP_PATH.test(url.pathname), SLOW);
      const id = APP_PATH.exec(new URL(page.url()).pathname)[1];
      await page.getByRole("heading", { level: 1, name: "hello" }).waitFor(SLOW);
      // The title is set in an effect after the first render: wait for it rather than race it.
      await page.waitForFunction((title) => document.title === title, "hello · sandpit");

      // The stages, followed on the deploy job's events, reach healthy.
      await deployStatus(page, "Version 1 deployed: healthy.");
      assert.deepEqual(await stepsOf(page, 1), ["Validating:done", "Installing:done", "Starting:done", "Healthy:done*"]);
      const deployLog = (await page.locator('pre[aria-label="Deploy log"]').textContent()) ?? "";
      assert.match(deployLog, /validated 1 files/);
      assert.match(deployLog, /no requirements\.txt: nothing to install/);
      await stateIs(page, "running");
      assert.match(await versionRow(page, 1).innerText(), /^1\s+live\s+files sent from the page\s+1\s/);

      // Its address: the proxy's path on this origin, opened in a new tab.
      const url = `${server.baseURL}/user/${username}/app/hello/`;
      const link = page.getByRole("link", { name: `${url} (opens in a new tab)` });
      assert.equal(await link.getAttribute("href"), url);
      assert.equal(await link.getAttribute("target"), "_blank");
      assert.match((await link.getAttribute("rel")) ?? "", /\bnoopener\b/);
      const [tab] = await Promise.all([context.waitForEvent("page"), link.click()]);
      await tab.getByText(ANSWER).waitFor(SLOW);
      assert.equal(tab.url(), url);

      // The log, live: the platform's lines, uvicorn's start on stderr, and the request on
      // stdout after the version went live (the health probe's came before).
      await page.waitForFunction(
        () => {
          const lines = [...document.querySelectorAll(".log__line")].map((l) => l.textContent ?? "");
          const live = lines.findIndex((t) => t.startsWith("platform") && t.includes("version 1 is live"));
          return live !== -1 && lines.slice(live + 1).some((t) => t.startsWith("stdout") && t.includes('"GET / HTTP/1.1" 200'));
        },
        null,
        SLOW,
      );
      assert.ok((await logLines(page)).some((t) => t.startsWith("stderr") && t.includes("Uvicorn running")), "stderr is labelled");
      await screenshot(page, "apps-healthy");

      // The list: linked by name, its runtime, state and address; the Header links to it.
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Apps" }).click();
      await waitForPath(page, "/apps");
      await page.getByRole("heading", { level: 1, name: "Apps" }).waitFor();
      await page.waitForFunction((title) => document.title === title, "Apps · sandpit");
      const row = page.getByRole("table", { name: "Your apps" }).getByRole("row").filter({ has: page.getByRole("rowheader", { name: "hello" }) });
      await row.getByText("running").waitFor(SLOW);
      assert.match(await row.innerText(), /python/);
      const listed = row.getByRole("link", { name: `${url} (opens in a new tab)` });
      assert.equal(await listed.getAttribute("target"), "_blank");
      assert.match((await listed.getAttribute("rel")) ?? "", /\bnoopener\b/);
      await row.getByRole("link", { name: "hello", exact: true }).click();
      await waitForPath(page, `/apps/${id}`);
      await stateIs(page, "running");

      // Stopped: the address answers the platform's page, the state says so.
      await page.getByRole("button", { name: "Stop app" }).click();
      await stateIs(page, "stopped");
      await page.getByRole("button", { name: "Start app" }).waitFor();
      const stopped = await tab.reload();
      assert.equal(stopped?.status(), 503);
      await tab.getByRole("heading", { name: "This app is stopped" }).waitFor();
      assert.equal((await (await context.request.get(`/api/v1/apps/${id}/status`)).json()).state, "stopped");
      await page.waitForFunction(() => [...document.querySelectorAll(".log__line--platform")].some((l) => l.textContent?.includes("stopped by its owner")), null, SLOW);

      // Started again: the next request starts it (the platform's page reloads itself until it
      // answers), and the page's state follows the platform's log lines to running.
      await page.getByRole("button", { name: "Start app" }).click();
      await page.getByRole("button", { name: "Stop app" }).waitFor();
      await stateIs(page, "idle");
      await tab.reload();
      await tab.getByText(ANSWER).waitFor(SLOW);
      await stateIs(page, "running");

      // Deleted after confirming: gone from the list, and its address answers "No such app".
      await page.getByRole("button", { name: "Delete hello" }).click();
      await page.getByRole("button", { name: "Cancel" }).click();
      assert.equal((await context.request.get(`/api/v1/apps/${id}`)).status(), 200, "cancel keeps it");
      await page.getByRole("button", { name: "Delete hello" }).click();
      await page.getByRole("button", { name: "Yes, delete hello" }).click();
      await waitForPath(page, "/apps");
      await page.getByText("No apps yet").waitFor();
      assert.equal((await context.request.get(`/api/v1/apps/${id}`)).status(), 404);
      const gone = await tab.reload();
      assert.equal(gone?.status(), 404);
      await tab.getByRole("heading", { name: "No such app" }).waitFor();
    });
  });

  it("shows a deploy that fails validation: the stage, main.py:1 and the message; a fix redeploys the same app", { timeout: 180_000 }, async () => {
    await withPage("failing", async ({ page, context }) => {
      await signUpApi(context);
      const id = await deployFromPlayground(page, "def broken(:\n    pass\n", "broken");

      await deployStatus(page, "Version 1 failed at validating.");
      assert.deepEqual(await stepsOf(page, 1), ["Validating:failed*", "Installing:waiting", "Starting:waiting", "Healthy:waiting"]);
      const failure = page.getByRole("alert").filter({ hasText: "Validating failed" });
      await failure.waitFor();
      const text = await failure.innerText();
      assert.match(text, /syntax_error/);
      assert.match(text, /in main\.py:1/);
      assert.match(text, /main\.py:1: invalid syntax/);
      assert.match(await failure.getByLabel("The app's last log lines").innerText(), /\[platform\] deploying version 1/);
      await stateIs(page, "failed");
      assert.match(await versionRow(page, 1).innerText(), /failed\s*syntax_error/);
      await screenshot(page, "apps-failed");

      // Deploying under the same name again picks that app: its runtime is fixed, a new version.
      await page.goto("/playground");
      await pythonProgram(page, FASTAPI);
      await page.getByRole("button", { name: "Deploy as app" }).click();
      const dialog = page.getByRole("dialog", { name: "Deploy as an app" });
      await dialog.getByLabel("App name").fill("broken");
      await dialog.getByText("You have an app named broken: this deploys a new version of it.").waitFor();
      assert.ok(await dialog.getByLabel("Runtime").isDisabled(), "the existing app's runtime");
      // Escape closes the dialog, and focus goes back to its button.
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "hidden" });
      await page.waitForFunction(() => document.activeElement?.textContent === "Deploy as app");
      await page.getByRole("button", { name: "Deploy as app" }).click();
      await dialog.getByLabel("App name").fill("broken");
      await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
      await waitForPath(page, `/apps/${id}`);
      await deployStatus(page, "Version 2 deployed: healthy.");
      await stateIs(page, "running");
      assert.equal((await (await context.request.get("/api/v1/apps")).json()).apps.length, 1, "no second app");

      // Deleting from the list asks first.
      await page.goto("/apps");
      const row = page.getByRole("table", { name: "Your apps" }).getByRole("row").filter({ has: page.getByRole("rowheader", { name: "broken" }) });
      await row.getByRole("button", { name: "Delete broken" }).click();
      await row.getByRole("button", { name: "Cancel" }).click();
      await page.waitForFunction(() => document.activeElement?.textContent === "Delete broken");
      await row.getByRole("button", { name: "Delete broken" }).click();
      await row.getByRole("button", { name: "Yes, delete broken" }).click();
      await row.waitFor({ state: "detached" });
      await page.getByRole("status").filter({ hasText: "App “broken” deleted." }).waitFor();
      assert.equal((await context.request.get(`/api/v1/apps/${id}`)).status(), 404);
    });
  });

  it("does not show another user's app", { timeout: 60_000 }, async () => {
    const owner = await openPage(browser, server.baseURL);
    try {
      await signUpApi(owner.context, "own");
      const created = await owner.context.request.post("/api/v1/apps", { data: { name: "mine", runtime: "static" } });
      assert.equal(created.status(), 201);
      const { id } = await created.json();
      await owner.page.goto(`/apps/${id}`);
      await owner.page.getByRole("heading", { level: 1, name: "mine" }).waitFor();
      await stateIs(owner.page, "not deployed");

      await withPage("other-user", async ({ page, context }) => {
        await signUpApi(context, "oth");
        await page.goto(`/apps/${id}`);
        await page.getByRole("heading", { level: 1, name: "App" }).waitFor();
        await page.getByRole("alert").filter({ hasText: "There is no such app: it was deleted, or it is not yours." }).waitFor();
        assert.equal(await page.getByRole("heading", { name: "mine" }).count(), 0);
        assert.equal(await page.getByRole("log").count(), 0, "no log of it either");
        assert.equal((await context.request.get(`/api/v1/apps/${id}`)).status(), 404);
        assert.equal((await context.request.get(`/api/v1/apps/${id}/logs`)).status(), 404);
        await page.goto("/apps");
        await page.getByText("No apps yet").waitFor();
      });
    } finally {
      await owner.context.close();
    }
  });

  it("creates an app, deploys it from a project, rolls back, and sets variables, secrets, public and pinned", { timeout: 240_000 }, async () => {
    await withPage("settings", async ({ page, context }) => {
      await signUpApi(context);
      const project = await context.request.post("/api/v1/projects", { data: { name: "Site", template: "web" } });
      assert.equal(project.status(), 201);
      const projectId = (await project.json()).id;

      await page.goto("/apps");
      await page.getByRole("heading", { level: 1, name: "Apps" }).waitFor();
      await page.getByLabel("Name", { exact: true }).fill("site");
      await page.getByLabel("Runtime").selectOption("static");
      assert.ok(await page.getByLabel("Entry").isDisabled(), "a static site has no entry to give");
      assert.ok(await page.getByLabel(/^Public/).isChecked(), "public by default");
      await page.getByRole("button", { name: "Create app" }).click();
      await page.waitForURL((url) => APP_PATH.test(url.pathname), SLOW);
      const id = APP_PATH.exec(new URL(page.url()).pathname)[1];
      await page.getByRole("heading", { level: 1, name: "site" }).waitFor();
      await stateIs(page, "not deployed");
      await page.getByText("Not deployed yet").waitFor();
      const { url } = await (await context.request.get(`/api/v1/apps/${id}`)).json();

      // Deploy from the project, change it, deploy again, then roll back to the first.
      const deploy = async (version) => {
        await page.getByLabel("Deploy from").selectOption({ label: "Project Site" });
        await page.getByRole("button", { name: "Deploy", exact: true }).click();
        await deployStatus(page, `Version ${version} deployed: healthy.`);
      };
      await deploy(1);
      assert.match(await (await context.request.get(url)).text(), /<h1>Hello<\/h1>/);
      const put = await context.request.put(`/api/v1/projects/${projectId}/files/index.html`, { data: "<!doctype html><h1>Second</h1>\n" });
      assert.equal(put.status(), 200);
      await deploy(2);
      assert.match(await (await context.request.get(url)).text(), /<h1>Second<\/h1>/);
      await versionRow(page, 1).getByText("earlier", { exact: true }).waitFor(SLOW);
      await versionRow(page, 2).getByText("live", { exact: true }).waitFor();
      await versionRow(page, 1).getByRole("button", { name: "Roll back to version 1" }).click();
      await deployStatus(page, "Version 3 deployed: healthy.");
      await versionRow(page, 3).getByText("live", { exact: true }).waitFor(SLOW);
      assert.match(await versionRow(page, 3).innerText(), /version 1 again \(rollback\)/);
      assert.equal(await versionRow(page, 3).getByRole("button").count(), 0, "no rollback to the live version");
      assert.match(await (await context.request.get(url)).text(), /<h1>Hello<\/h1>/);

      // Variables: a bad name is explained; a reserved one is refused by the server.
      const variables = page.locator("form[aria-labelledby='variables-heading']");
      await variables.getByRole("button", { name: "Add variable" }).click();
      await variables.getByLabel("Name of variable 1").fill("1BAD");
      await variables.getByRole("button", { name: "Save variables" }).click();
      await variables.getByRole("alert").filter({ hasText: "is not a variable name" }).waitFor();
      await variables.getByLabel("Name of variable 1").fill("PORT");
      await variables.getByRole("button", { name: "Save variables" }).click();
      await variables.getByRole("alert").filter({ hasText: "PORT is set by the platform" }).waitFor();
      await variables.getByLabel("Name of variable 1").fill("GREETING");
      await variables.getByLabel("Value of variable 1").fill("hi there");
      await variables.getByRole("button", { name: "Save variables" }).click();
      await variables.getByRole("status").filter({ hasText: "Saved 1 variable." }).waitFor();
      let app = await (await context.request.get(`/api/v1/apps/${id}`)).json();
      assert.deepEqual(app.env, { GREETING: "hi there" });

      // Secrets: names only come back; the value is not in the page after saving.
      const secrets = page.locator("form[aria-labelledby='secrets-heading']");
      await secrets.getByRole("button", { name: "Add secret" }).click();
      await secrets.getByLabel("Name of secret 1").fill("API_KEY");
      await secrets.getByLabel("Value of secret 1").fill("s3cret-value");
      await secrets.getByRole("button", { name: "Save secrets" }).click();
      await secrets.getByRole("status").filter({ hasText: "Saved 1 secret." }).waitFor();
      await page.locator("#secrets-hint code").filter({ hasText: "API_KEY" }).waitFor();
      app = await (await context.request.get(`/api/v1/apps/${id}`)).json();
      assert.deepEqual(app.secrets, ["API_KEY"]);
      assert.equal(JSON.stringify(app).includes("s3cret-value"), false, "the API never answers the value");
      assert.equal(await secrets.getByLabel("Value of secret 1").inputValue(), "", "the value field is emptied");
      assert.equal((await page.content()).includes("s3cret-value"), false);
      // Saving again needs the value again (the API replaces all secrets).
      await secrets.getByRole("button", { name: "Save secrets" }).click();
      await secrets.getByRole("alert").filter({ hasText: "Give API_KEY a value" }).waitFor();

      // Private: a visitor who is not the owner gets "No such app"; the owner still gets it.
      await page.getByLabel("Public").uncheck();
      await page.getByRole("status").filter({ hasText: "Private: only you, signed in, may open it." }).waitFor();
      assert.equal((await (await context.request.get(`/api/v1/apps/${id}`)).json()).public, false);
      const anonymous = await browser.newContext({ baseURL: server.baseURL });
      try {
        const visit = await anonymous.request.get(url, { headers: { Accept: "text/html" } });
        assert.equal(visit.status(), 404);
        assert.match(await visit.text(), /No such app/);
      } finally {
        await anonymous.close();
      }
      assert.equal((await context.request.get(url)).status(), 200);
      await page.getByLabel("Pinned").check();
      await page.getByRole("status").filter({ hasText: "Pinned: it is kept while idle." }).waitFor();
      app = await (await context.request.get(`/api/v1/apps/${id}`)).json();
      assert.equal(app.pinned, true);
      // After a reload the page shows what the server has.
      await page.reload();
      await page.getByRole("heading", { level: 1, name: "site" }).waitFor();
      assert.equal(await page.getByLabel("Public").isChecked(), false);
      assert.equal(await page.getByLabel("Pinned").isChecked(), true);
      assert.equal(await variables.getByLabel("Value of variable 1").inputValue(), "hi there");
      assert.equal(await secrets.getByLabel("Name of secret 1").inputValue(), "API_KEY");
      await screenshot(page, "apps-settings");
    });
  });

  it("deploys a lab session's workspace with “Deploy as app” in the lab", { timeout: 180_000 }, async () => {
    await withPage("lab", async ({ page, context }) => {
      await signUpApi(context);
      const started = await context.request.post("/api/v1/labs/python-functions/start");
      assert.ok(started.ok(), await started.text());
      const sessionId = (await started.json()).session.id;
      // The lab has no main.py: the app is written beside its files.
      const put = await context.request.put(`/api/v1/sessions/${sessionId}/files/main.py`, { data: FASTAPI });
      assert.equal(put.status(), 201);

      await page.goto("/labs/python-functions");
      await page.getByRole("button", { name: "Check" }).waitFor(SLOW);
      await page.getByRole("button", { name: "Deploy as app" }).click();
      const dialog = page.getByRole("dialog", { name: "Deploy as an app" });
      assert.equal(await dialog.getByLabel("App name").inputValue(), "python-functions", "named after the lab");
      await dialog.getByText("Guessed from the files.").waitFor();
      assert.equal(await dialog.getByLabel("Runtime").inputValue(), "python");
      await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
      await page.waitForURL((url) => APP_PATH.test(url.pathname), SLOW);
      await deployStatus(page, "Version 1 deployed: healthy.");
      assert.match(await versionRow(page, 1).innerText(), /a session's workspace/);
      const { url, id } = (await (await context.request.get("/api/v1/apps")).json()).apps[0];
      const versions = (await (await context.request.get(`/api/v1/apps/${id}/versions`)).json()).versions;
      assert.equal(versions[0].source, `session:${sessionId}`);
      assert.equal(await (await context.request.get(url)).text(), ANSWER);

      // The app's Deploy form offers that session, and deploying from it makes version 2.
      const source = page.getByLabel("Deploy from");
      assert.match(await source.locator("option:checked").innerText(), /^Lab python-functions, started /);
      await page.getByRole("button", { name: "Deploy", exact: true }).click();
      await deployStatus(page, "Version 2 deployed: healthy.");
    });
  });
});
