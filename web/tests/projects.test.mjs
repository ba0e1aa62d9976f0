// Projects (/projects, /projects/<id>) in a real Chromium against the real server: create a
// project, edit, save and rename its files (with a conflict), run agent jobs against a fake
// OpenAI-compatible model (progress, a code job's diff, Accept, a stale change set, the other
// kinds' results, cancelling), and a server without a model failing with llm_not_configured.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, screenshot, uniqueUsername, waitForPath } from "./support/browser.mjs";
import { HOLD, llmEnv, startFakeModel } from "./support/fake-llm.mjs";
import { startServer } from "./support/server.mjs";

const PASSWORD = "correct horse battery";
const SLOW = { timeout: 60_000 };

const REVERSED_MAIN =
  'def greet(name):\n    """A greeting for `name`."""\n    return f"Hello, {name}!"\n\n\ndef reverse(text):\n    return text[::-1]\n';
const REVERSE_TEST =
  'import unittest\n\nfrom main import reverse\n\n\nclass ReverseTest(unittest.TestCase):\n    def test_reverses(self):\n        self.assertEqual(reverse("abc"), "cba")\n';
const SHOUT_MAIN = 'def greet(name):\n    return f"HELLO, {name.upper()}!"\n';

// What the fake model answers, per kind (the JSON shapes of crates/sandpit-server/src/agents/output.rs).
const replies = {
  code: (user) =>
    user.includes("shout")
      ? JSON.stringify({ summary: "Shouts the greeting", changes: [{ path: "main.py", action: "write", content: SHOUT_MAIN }] })
      : "Here is the change:\n```json\n" +
        JSON.stringify({
          summary: "Adds **reverse()** with a test",
          changes: [
            { path: "main.py", action: "write", content: REVERSED_MAIN },
            { path: "test_reverse.py", action: "write", content: REVERSE_TEST },
          ],
        }) +
        "\n```",
  research: () =>
    JSON.stringify({
      summary: "Use **unittest**: it ships with Python.",
      findings: [
        {
          title: "Test runners",
          detail: 'unittest needs nothing installed. <img src="x" onerror="window.__pwned = 1"><script>window.__pwned = 2</script>',
          sources: ["https://docs.python.org/3/library/unittest.html"],
        },
      ],
      open_questions: ["Is pytest allowed in the sandbox?"],
    }),
  wireframe: () =>
    JSON.stringify({
      screens: [
        { name: "Greeting form", purpose: "Ask for a name", elements: [{ kind: "input", label: "Your name" }, { kind: "button", label: "Greet me" }] },
        { name: "Greeting", purpose: "Say hello", elements: [{ kind: "heading", label: "Hello, Ada!", notes: "large" }] },
      ],
      flow: ["Greeting form → Greeting on submit"],
    }),
  qa: () => JSON.stringify({ verdict: "pass", summary: "All tests pass: greet() greets by name.", failures: [] }),
  pedagogy: () =>
    JSON.stringify({
      objectives: ["Write a function with a docstring"],
      steps: [{ title: "Functions", explanation: "A function is defined with `def`.", exercise: "Write `shout(text)`." }],
      quiz: [{ question: "What keyword defines a function?", answer: "`def`" }],
    }),
};

/** @type {Awaited<ReturnType<typeof startFakeModel>>} */
let model;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;

before(async () => {
  model = await startFakeModel(replies);
  server = await startServer({ env: llmEnv(model.baseURL) });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await model?.close();
});

async function withPage(name, fn, on = () => server) {
  const session = await openPage(browser, on().baseURL);
  try {
    await fn(session);
    assert.deepEqual(session.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    await screenshot(session.page, `projects-${name}-failure`).catch(() => undefined);
    error.message += `\n${on().logs()}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

/** Signs up through the API (the context's cookie); the page is then signed in. */
async function signUpApi(context) {
  const response = await context.request.post("/api/v1/auth/signup", { data: { username: uniqueUsername("p"), password: PASSWORD } });
  assert.equal(response.status(), 201);
}

async function createProjectApi(context, name, template = "python") {
  const response = await context.request.post("/api/v1/projects", { data: { name, description: "", template } });
  assert.equal(response.status(), 201, await response.text());
  return (await response.json()).id;
}

const fileText = (context, id, path) => context.request.get(`/api/v1/projects/${id}/files/${path}`).then((r) => r.text());

const editor = (page, file) => page.getByRole("textbox", { name: `Editor: ${file}` });

/** Replaces the open editor's contents with `text` (as a paste would) and saves with Ctrl+S. */
async function replaceAndSave(page, file, text) {
  await editor(page, file).click();
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText(text);
  await page.getByRole("tab", { name: `${file} (unsaved)` }).waitFor();
  await page.keyboard.press("Control+S");
  await page.getByRole("tab", { name: file, exact: true }).waitFor();
}

/** The editor's text: CodeMirror's lines joined (only those drawn; the files here are short). */
const editorText = (page, file) => editor(page, file).locator(".cm-line").allTextContents().then((lines) => lines.join("\n"));

/** Waits until the editor of `file` holds exactly `expected`. */
async function waitForEditorText(page, file, expected) {
  await page.waitForFunction(
    ([name, want]) => {
      const el = document.querySelector(`[aria-label="Editor: ${name}"]`);
      return el && [...el.querySelectorAll(".cm-line")].map((l) => l.textContent).join("\n") === want;
    },
    [file, expected],
    SLOW,
  );
}

const jobs = (page) => page.getByRole("complementary", { name: "Agent jobs" });

async function startJob(page, kind, request) {
  await jobs(page).getByLabel("Kind").selectOption({ label: kind });
  await jobs(page).getByLabel("Request").fill(request);
  await jobs(page).getByRole("button", { name: "Start job" }).click();
}

/** Waits for the job panel's live status to say `<Kind> job <state>`. */
const jobState = (page, kind, state) => jobs(page).getByRole("status").filter({ hasText: `${kind} job ${state}` }).waitFor(SLOW);

describe("projects", () => {
  it("creates a project, edits, saves, renames and deletes its files, with a conflict", { timeout: 180_000 }, async () => {
    await withPage("files", async ({ page, context }) => {
      await page.goto("/signup");
      await page.getByLabel("Username").fill(uniqueUsername("p"));
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign up" }).click();
      await waitForPath(page, "/");

      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Projects" }).click();
      await waitForPath(page, "/projects");
      await page.getByRole("heading", { level: 1, name: "Projects" }).waitFor();
      assert.equal(await page.title(), "Projects · sandpit");
      await page.getByText("No projects yet").waitFor();

      // Create: a blank name is explained, not sent.
      await page.getByRole("button", { name: "Create project" }).click();
      assert.match((await page.getByRole("alert").textContent()) ?? "", /name/i);
      await page.getByLabel("Name").fill("Greeter");
      await page.getByLabel("Description").fill("Says hello");
      await page.getByLabel("Start from").selectOption("python");
      await page.getByRole("button", { name: "Create project" }).click();
      await page.getByRole("heading", { level: 1, name: "Greeter" }).waitFor(SLOW);
      const id = new URL(page.url()).pathname.split("/").pop();
      assert.match(id, /^[0-9a-f-]{36}$/);
      assert.equal(await page.title(), "Greeter · sandpit");
      await page.getByRole("button", { name: "Open main.py" }).waitFor();
      await page.getByRole("button", { name: "Open test_main.py" }).waitFor();

      // A new file, edited and saved; after a reload it is still there.
      await page.getByRole("button", { name: "New file" }).click();
      await page.getByLabel("New file path").fill("notes/todo.md");
      await page.getByRole("button", { name: "Create", exact: true }).click();
      await page.getByRole("tab", { name: "notes/todo.md" }).waitFor();
      await replaceAndSave(page, "notes/todo.md", "# To do\n\n- reverse strings\n");
      assert.equal(await fileText(context, id, "notes/todo.md"), "# To do\n\n- reverse strings\n");
      await page.reload();
      await page.getByRole("button", { name: "Open notes/todo.md" }).click();
      await waitForEditorText(page, "notes/todo.md", "# To do\n\n- reverse strings\n");

      // A conflict: main.py changes elsewhere while it has edits here; saving is refused.
      await page.getByRole("button", { name: "Open main.py" }).click();
      await editor(page, "main.py").waitFor();
      const put = await context.request.put(`/api/v1/projects/${id}/files/main.py`, { data: "# changed elsewhere\n" });
      assert.equal(put.status(), 200);
      await editor(page, "main.py").click();
      await page.keyboard.press("Control+End");
      await page.keyboard.type("# mine");
      await page.keyboard.press("Control+S");
      const conflict = page.getByRole("alert").filter({ hasText: "This file changed on disk since you opened it" });
      await conflict.waitFor();
      assert.equal(await fileText(context, id, "main.py"), "# changed elsewhere\n", "nothing was overwritten");
      // Overwrite: what the editor holds wins.
      const mine = await editorText(page, "main.py");
      assert.match(mine, /# mine$/);
      await conflict.getByRole("button", { name: "Overwrite" }).click();
      await conflict.waitFor({ state: "detached" });
      await page.getByRole("tab", { name: "main.py", exact: true }).waitFor();
      assert.equal(await fileText(context, id, "main.py"), mine);

      // Rename (the open tab follows) and delete, each after the browser's own question.
      page.once("dialog", (dialog) => dialog.accept("notes/done.md"));
      await page.getByRole("button", { name: "Rename notes/todo.md" }).click();
      await page.getByRole("button", { name: "Open notes/done.md" }).waitFor();
      await page.getByRole("button", { name: "Open notes/todo.md" }).waitFor({ state: "detached" });
      assert.equal(await fileText(context, id, "notes/done.md"), "# To do\n\n- reverse strings\n");
      page.once("dialog", (dialog) => dialog.accept());
      await page.getByRole("button", { name: "Delete notes/done.md" }).click();
      await page.getByRole("button", { name: "Open notes/done.md" }).waitFor({ state: "detached" });
      assert.equal((await context.request.get(`/api/v1/projects/${id}/files/notes/done.md`)).status(), 404);
      await screenshot(page, "projects-editor");

      // The list: the project with its description, linked; deleting asks first.
      await page.getByRole("link", { name: "← Projects" }).click();
      await waitForPath(page, "/projects");
      const table = page.getByRole("table", { name: "Your projects" });
      const row = table.getByRole("row").filter({ has: page.getByRole("rowheader", { name: "Greeter" }) });
      await row.waitFor();
      assert.match(await row.innerText(), /Says hello/);
      assert.match((await row.getByRole("cell").nth(1).textContent()) ?? "", /^\d+$/, "a file count");
      assert.equal(await row.getByRole("link", { name: "Greeter" }).getAttribute("href"), `/projects/${id}`);
      await row.getByRole("button", { name: "Delete Greeter" }).click();
      await row.getByRole("button", { name: "Cancel" }).click();
      assert.equal((await context.request.get(`/api/v1/projects/${id}`)).status(), 200, "cancel keeps it");
      await row.getByRole("button", { name: "Delete Greeter" }).click();
      await row.getByRole("button", { name: "Yes, delete Greeter" }).click();
      await row.waitFor({ state: "detached" });
      await page.getByRole("status").filter({ hasText: "deleted" }).waitFor();
      assert.equal((await context.request.get(`/api/v1/projects/${id}`)).status(), 404);
    });
  });

  it("runs a code job: progress, the change set as diffs, Accept, and a stale change set refused", { timeout: 180_000 }, async () => {
    await withPage("code", async ({ page, context }) => {
      await signUpApi(context);
      const id = await createProjectApi(context, "Reverser");
      await page.goto(`/projects/${id}`);
      await page.getByRole("heading", { level: 1, name: "Reverser" }).waitFor(SLOW);
      await page.getByText("No jobs yet.").waitFor();
      // main.py open, without edits: it follows the accepted change.
      await page.getByRole("button", { name: "Open main.py" }).click();
      await waitForEditorText(page, "main.py", (await fileText(context, id, "main.py")));

      await startJob(page, "Code", "Add a function that reverses a string, with a test");
      await jobState(page, "Code", "completed");
      const progress = jobs(page).getByRole("progressbar", { name: "Progress of the code job" });
      assert.equal(await progress.getAttribute("aria-valuenow"), "100");
      assert.ok(model.requests.some((r) => r.kind === "code" && r.user.includes("reverses a string")), "the model was asked");
      assert.ok(model.requests.some((r) => r.kind === "code" && r.user.includes("--- main.py ---")), "with the project's files");

      // The diffs: main.py modified (a function added), test_reverse.py new.
      const result = jobs(page).getByRole("region", { name: "Result" });
      await result.getByText("Adds").waitFor();
      assert.equal(await result.locator("strong").first().textContent(), "reverse()", "the summary is Markdown");
      const mainDiff = result.getByRole("region", { name: "Changes to main.py" });
      await mainDiff.locator(".diff__line--add").filter({ hasText: "def reverse(text):" }).waitFor(SLOW);
      assert.match(await mainDiff.locator(".diff__what").innerText(), /modify/);
      // The template's `if __name__ == "__main__":` block goes (the fake's main.py has none).
      const removed = await mainDiff.locator(".diff__line--del .diff__text").allTextContents();
      assert.deepEqual(
        removed.map((t) => t.replace(/^Removed: -/, "")),
        ['if __name__ == "__main__":', '    print(greet("world"))'],
      );
      assert.match(await mainDiff.locator(".diff__counts").innerText(), /\+2 −2/);
      const testDiff = result.getByRole("region", { name: "Changes to test_reverse.py" });
      assert.match(await testDiff.locator(".diff__what").innerText(), /new file/);
      assert.equal(await testDiff.locator(".diff__line--add").count(), REVERSE_TEST.trimEnd().split("\n").length);
      await screenshot(page, "projects-code-diff");

      // Accept: the files change, in the project and in the open editor.
      await result.getByRole("button", { name: "Accept changes" }).click();
      await result.getByRole("status").filter({ hasText: "Accepted: 2 files changed (main.py, test_reverse.py)" }).waitFor();
      assert.equal(await fileText(context, id, "main.py"), REVERSED_MAIN);
      assert.equal(await fileText(context, id, "test_reverse.py"), REVERSE_TEST);
      await waitForEditorText(page, "main.py", REVERSED_MAIN);
      await page.getByRole("button", { name: "Open test_reverse.py" }).waitFor();
      await mainDiff.getByText("No difference from the file as it is now.").waitFor();
      // Accepting again writes nothing.
      await result.getByRole("button", { name: "Accept changes" }).click();
      await result.getByRole("status").filter({ hasText: "accepted before" }).waitFor();

      // A second code job, whose file then changes here before it is accepted: refused whole.
      await startJob(page, "Code", "Make greet shout");
      await jobState(page, "Code", "completed");
      const second = jobs(page).getByRole("region", { name: "Result" });
      await second.getByRole("region", { name: "Changes to main.py" }).locator(".diff__line--add").filter({ hasText: "HELLO" }).waitFor(SLOW);
      await replaceAndSave(page, "main.py", "# edited before accepting\n");
      await second.getByRole("region", { name: "Changes to main.py" }).getByText("changed since the job read it", { exact: true }).waitFor();
      await second.getByText("Changed since the job read it: main.py. Accepting will be refused").waitFor();
      await second.getByRole("button", { name: "Accept changes" }).click();
      const stale = second.getByRole("alert").filter({ hasText: "change_set_stale" });
      await stale.waitFor();
      assert.match(await stale.innerText(), /main\.py/);
      assert.equal(await fileText(context, id, "main.py"), "# edited before accepting\n", "nothing was written");

      // Both jobs are listed, and the first can be shown again.
      const history = jobs(page).getByRole("table", { name: "Jobs of this project" });
      await history.getByRole("row").filter({ hasText: "Code" }).nth(1).waitFor();
      assert.equal(await history.getByRole("row").filter({ hasText: "completed" }).count(), 2);
      await history.getByRole("button", { name: /^Show Code job/ }).click();
      await jobs(page).getByRole("region", { name: "Changes to test_reverse.py" }).waitFor();
    });
  });

  it("shows the result of each other kind, the model's text sanitised", { timeout: 240_000 }, async () => {
    await withPage("kinds", async ({ page, context }) => {
      await signUpApi(context);
      const id = await createProjectApi(context, "Kinds");
      await page.goto(`/projects/${id}`);
      await page.getByRole("heading", { level: 1, name: "Kinds" }).waitFor(SLOW);

      await startJob(page, "Research", "Which test runner should I use?");
      await jobState(page, "Research", "completed");
      let result = jobs(page).getByRole("region", { name: "Result" });
      await result.getByRole("heading", { name: "Test runners" }).waitFor();
      assert.equal(await result.locator("strong").first().textContent(), "unittest");
      assert.match(await result.innerText(), /unittest needs nothing installed/);
      assert.equal(await result.locator("script, img[onerror], [onerror]").count(), 0, "no script or handler survives");
      assert.equal(await page.evaluate(() => window.__pwned), undefined, "nothing of the model's ran");
      assert.equal(
        await result.getByRole("link", { name: "https://docs.python.org/3/library/unittest.html" }).getAttribute("rel"),
        "noopener noreferrer",
      );
      await result.getByText("Is pytest allowed in the sandbox?").waitFor();

      await startJob(page, "Wireframe", "A page that greets by name");
      await jobState(page, "Wireframe", "completed");
      result = jobs(page).getByRole("region", { name: "Result" });
      const form = result.getByRole("region", { name: "Screen: Greeting form" });
      await form.getByText("Greet me").waitFor();
      await result.getByRole("region", { name: "Screen: Greeting" }).getByText("Hello, Ada!").waitFor();
      await result.getByText("Greeting form → Greeting on submit").waitFor();

      await startJob(page, "Pedagogy", "Teach functions");
      await jobState(page, "Pedagogy", "completed");
      result = jobs(page).getByRole("region", { name: "Result" });
      await result.getByRole("heading", { name: "Functions" }).waitFor();
      assert.equal(await result.locator("code", { hasText: "def" }).first().textContent(), "def");
      await result.getByText("What keyword defines a function?").click();
      await result.getByText("Write a function with a docstring").waitFor();

      // qa runs the project's tests in a sandbox, then reports.
      await jobs(page).getByLabel("Kind").selectOption({ label: "QA" });
      await jobs(page).getByRole("button", { name: "Start job" }).click();
      await jobState(page, "QA", "completed");
      result = jobs(page).getByRole("region", { name: "Result" });
      await result.getByRole("heading", { name: /Test report: pass/ }).waitFor();
      assert.match(await result.innerText(), /All tests pass/);
      const run = result.locator(".result__run");
      assert.match(await run.locator("summary").innerText(), /python3 -m unittest discover -v — passed/);
      await run.locator("summary").click();
      // unittest -v reports on stderr.
      const output = await run.getByLabel("Test output (stderr)").innerText();
      assert.match(output, /test_greets_by_name/);
      assert.match(output, /^OK$/m);
      assert.ok(model.requests.some((r) => r.kind === "qa" && r.user.includes("The test run")), "the model saw the run");
      await screenshot(page, "projects-qa");

      const history = jobs(page).getByRole("table", { name: "Jobs of this project" });
      await history.getByRole("row").filter({ hasText: "QA" }).waitFor();
      assert.equal(await history.getByRole("row").filter({ hasText: "completed" }).count(), 4);
    });
  });

  it("shows a running job's progress live, again after a reload, and cancels it", { timeout: 180_000 }, async () => {
    await withPage("cancel", async ({ page, context }) => {
      await signUpApi(context);
      const id = await createProjectApi(context, "Patience");
      await page.goto(`/projects/${id}`);
      await page.getByRole("heading", { level: 1, name: "Patience" }).waitFor(SLOW);
      const asked = model.requests.length;

      await startJob(page, "Code", `Take your time ${HOLD}`);
      const progress = jobs(page).getByRole("progressbar", { name: "Progress of the code job" });
      await jobs(page).getByText("asking the language model").waitFor(SLOW);
      assert.equal(await progress.getAttribute("aria-valuenow"), "40");
      await jobState(page, "Code", "running");
      assert.equal(model.requests.length, asked + 1, "the model holds the request");

      // A reload picks the running job up again from its events.
      await page.reload();
      await jobState(page, "Code", "running");
      await jobs(page).getByText("asking the language model").waitFor(SLOW);
      assert.equal(await progress.getAttribute("aria-valuenow"), "40");

      await jobs(page).getByRole("button", { name: "Cancel job" }).click();
      await jobState(page, "Code", "cancelled");
      assert.equal(await jobs(page).getByRole("button", { name: "Cancel job" }).count(), 0, "nothing left to cancel");
      const listed = await (await context.request.get(`/api/v1/jobs?project=${id}`)).json();
      assert.equal(listed.jobs.length, 1);
      assert.equal(listed.jobs[0].state, "cancelled");
      await jobs(page).getByRole("table", { name: "Jobs of this project" }).getByText("cancelled").waitFor();
    });
  });

  it("fails a job at once on a server without a model, showing llm_not_configured", { timeout: 120_000 }, async () => {
    const bare = await startServer();
    try {
      await withPage(
        "no-model",
        async ({ page, context }) => {
          await signUpApi(context);
          const id = await createProjectApi(context, "No model", "empty");
          await page.goto(`/projects/${id}`);
          await page.getByRole("heading", { level: 1, name: "No model" }).waitFor(SLOW);
          await page.getByText("No files yet.").waitFor();
          await startJob(page, "Research", "Anything");
          await jobState(page, "Research", "failed");
          const failure = jobs(page).getByRole("alert").filter({ hasText: "llm_not_configured" });
          await failure.waitFor();
          const text = await failure.innerText();
          assert.match(text, /No language model is configured/);
          assert.match(text, /llm\.routes/, "the server's message says what to set");
          assert.equal(await jobs(page).getByRole("region", { name: "Result" }).count(), 0);
          await jobs(page).getByRole("table", { name: "Jobs of this project" }).getByText("llm_not_configured").waitFor();
        },
        () => bare,
      );
    } finally {
      await bare.stop();
    }
  });
});
