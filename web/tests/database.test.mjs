// The database viewer (/database) in a real Chromium against the real server: a new user
// creates their database (SQLite here), is stopped when a statement writes and runs it in write
// mode after confirming, pages through 60 rows, sees markup in a cell as text (never run), and
// the database's message for a bad statement; deletes it and starts again empty. A deployed
// FastAPI app writes a row that the viewer shows; another user sees only their own database.
// On a server with PostgreSQL, the role's credentials are shown once, copied, and rotated.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, screenshot, uniqueUsername, waitForPath } from "./support/browser.mjs";
import { startPostgres } from "./support/postgres.mjs";
import { startServer } from "./support/server.mjs";

const PASSWORD = "correct horse battery";
const SLOW = { timeout: 60_000 };
const CREATE_NOTES = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)";
// INSERT first (not WITH …): the server counts the rows changed only then (see the report).
const SIXTY_NOTES = "INSERT INTO notes (text)\nWITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)\nSELECT 'note ' || i FROM n";
const MARKUP = "<img src=x onerror=window.__pwned=1>";
const NOTES_APP = `import os, sqlite3
from fastapi import FastAPI
app = FastAPI()
@app.post("/notes")
def add(text: str):
    con = sqlite3.connect(os.environ["DATABASE_PATH"])
    con.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)")
    con.execute("INSERT INTO notes (text) VALUES (?)", (text,))
    con.commit()
    return {"ok": True}
`;

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

/** A fresh context and page on `on` (the file's server unless told), checked for uncaught errors. */
async function withPage(name, fn, { on = server, ...options } = {}) {
  const session = await openPage(browser, on.baseURL, options);
  try {
    await fn(session);
    assert.deepEqual(session.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    await screenshot(session.page, `database-${name}-failure`).catch(() => undefined);
    error.message += `\n${on.logs()}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

/** Signs up through the API (the context's cookie); the page is then signed in. */
async function signUpApi(context, prefix = "d") {
  const username = uniqueUsername(prefix);
  const response = await context.request.post("/api/v1/auth/signup", { data: { username, password: PASSWORD } });
  assert.equal(response.status(), 201);
  return username;
}

/** Runs one statement through the API, in write mode. */
async function writeApi(context, sql) {
  const response = await context.request.post("/api/v1/database/query", { data: { sql, write: true } });
  assert.equal(response.status(), 200, await response.text());
}

/** Waits for focus to be on the element with `id`. */
const focusIs = (page, id) => page.waitForFunction((want) => document.activeElement?.id === want, id, { timeout: 5_000 });

const status = (page, text) => page.getByRole("status").filter({ hasText: text }).waitFor(SLOW);
const alert = (page, text) => page.getByRole("alert").filter({ hasText: text }).waitFor(SLOW);

/** The row of `name` in the tables list. */
const tableRow = (page, name) => page.getByRole("table", { name: "Tables" }).getByRole("row").filter({ has: page.getByRole("rowheader", { name, exact: true }) });

/** The text of each cell of a grid's body rows, the row number first. */
const gridRows = (page, label) =>
  page
    .getByRole("table", { name: label, exact: true })
    .locator("tbody tr")
    .evaluateAll((rows) => rows.map((tr) => [...tr.children].map((c) => c.textContent)));

/** Puts `sql` in the console and presses Ctrl+Enter. */
async function runSql(page, sql) {
  const box = page.getByLabel("SQL statement");
  await box.fill(sql);
  await box.press("Control+Enter");
}

/** Runs `sql`, is refused as a write, confirms write mode, and waits for `done`. */
async function runWriting(page, sql, done) {
  await runSql(page, sql);
  await alert(page, "This statement changes data or tables, so it was not run");
  await page.getByRole("button", { name: "Run in write mode…" }).click();
  const dialog = page.getByRole("dialog", { name: "Run in write mode?" });
  await dialog.waitFor();
  assert.equal(await dialog.getByLabel("The statement").textContent(), sql, "the dialog names the statement");
  await dialog.getByRole("button", { name: "Run in write mode", exact: true }).click();
  await dialog.waitFor({ state: "detached" });
  await status(page, `Ran in write mode. ${done}`);
}

describe("database viewer", () => {
  it("creates a database, writes after confirming, pages through rows, shows markup as text and SQL errors, deletes it", { timeout: 180_000 }, async () => {
    await withPage("viewer", async ({ page, context }) => {
      await signUpApi(context);
      await page.goto("/");
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Database" }).click();
      await waitForPath(page, "/database");
      await page.getByRole("heading", { level: 1, name: "Database" }).waitFor();
      assert.equal(await page.title(), "Database · sandpit");
      assert.equal(await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Database" }).getAttribute("aria-current"), "page");

      // None yet: what it is, and Create. SQLite on this server: no credentials to show.
      await page.getByRole("heading", { name: "No database yet" }).waitFor();
      await page.getByRole("button", { name: "Create database" }).click();
      await status(page, "Database created: SQLite, app.sqlite.");
      await page.getByRole("heading", { name: "Your database" }).waitFor();
      await focusIs(page, "db-heading");
      const facts = await page.locator(".db-facts").innerText();
      assert.match(facts, /Engine\s+SQLite/);
      assert.match(facts, /DATABASE_URL=sqlite:\/\/\/\/data\/app\.sqlite/);
      assert.match(facts, /DATABASE_PATH=\/data\/app\.sqlite/);
      await page.getByText("it has no user or password to rotate").waitFor();
      assert.equal(await page.getByRole("button", { name: /Rotate/ }).count(), 0, "SQLite has nothing to rotate");
      assert.equal(await page.getByRole("heading", { name: /^Credentials/ }).count(), 0);
      await page.getByText("No tables yet.").waitFor();

      // A write is refused read-only; Cancel in the dialog runs nothing.
      await runSql(page, CREATE_NOTES);
      await alert(page, "This statement changes data or tables, so it was not run");
      await page.getByRole("button", { name: "Run in write mode…" }).click();
      const dialog = page.getByRole("dialog", { name: "Run in write mode?" });
      await dialog.getByText("there is no undo").waitFor();
      await screenshot(page, "database-write-dialog");
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Cancel", "the dialog starts on Cancel");
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "detached" });
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Run in write mode…", "focus back on the offer");
      assert.deepEqual((await (await context.request.get("/api/v1/database/tables")).json()).tables, [], "nothing was run");

      // Confirmed, it runs; the tables are read again.
      await runWriting(page, CREATE_NOTES, "Done: no rows changed.");
      await focusIs(page, "db-sql");
      await tableRow(page, "notes").waitFor();
      await runWriting(page, SIXTY_NOTES, "Done: 60 rows changed.");
      await tableRow(page, "notes").getByRole("cell", { name: "60", exact: true }).waitFor();
      assert.match(await tableRow(page, "notes").innerText(), /notes\s+table\s+60/);

      // Its columns, then its rows 50 at a time.
      await tableRow(page, "notes").getByRole("button", { name: "notes" }).click();
      assert.equal(await tableRow(page, "notes").getByRole("button", { name: "notes" }).getAttribute("aria-pressed"), "true");
      const columns = page.getByRole("table", { name: "Columns of notes" });
      assert.match(await columns.getByRole("row").filter({ hasText: "id" }).innerText(), /id\s+INTEGER\s+yes\s+no/);
      assert.match(await columns.getByRole("row").filter({ hasText: "text" }).innerText(), /text\s+TEXT\s+no\s+no/);
      await status(page, "Rows 1–50 of 60");
      let rows = await gridRows(page, "Rows of notes");
      assert.equal(rows.length, 50);
      assert.deepEqual(rows[0], ["1", "1", "note 1"]);
      const pages = page.getByRole("navigation", { name: "Pages of notes" });
      assert.equal(await pages.getByRole("button", { name: "Previous page" }).getAttribute("aria-disabled"), "true");
      await pages.getByRole("button", { name: "Next page" }).click();
      await status(page, "Rows 51–60 of 60");
      await page.getByRole("table", { name: "Rows of notes" }).getByRole("cell", { name: "note 60" }).waitFor();
      rows = await gridRows(page, "Rows of notes");
      assert.deepEqual(
        rows.map((r) => r[2]),
        Array.from({ length: 10 }, (_, i) => `note ${51 + i}`),
      );
      assert.equal(rows[0][0], "51", "rows are numbered across pages");
      assert.equal(await pages.getByRole("button", { name: "Next page" }).getAttribute("aria-disabled"), "true");
      await pages.getByRole("button", { name: "Next page" }).press("Enter");
      assert.equal((await gridRows(page, "Rows of notes")).length, 10, "no page after the last");
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Next page", "focus stays on the button");
      await screenshot(page, "database-rows");

      // Markup in a cell is text: the page shown is read again after the write.
      await runWriting(page, `UPDATE notes SET text = '${MARKUP}' WHERE id = 55`, "Done: 1 row changed.");
      const grid = page.getByRole("table", { name: "Rows of notes" });
      await grid.getByRole("cell", { name: MARKUP, exact: true }).waitFor();
      assert.equal(await grid.locator("img").count(), 0, "no element made from a cell");
      await runSql(page, "SELECT id, text, NULL AS missing, 'NULL' AS word, x'00ff' AS blob FROM notes WHERE id = 55");
      await status(page, "1 row.");
      assert.deepEqual(await gridRows(page, "Result"), [["1", "55", MARKUP, "NULL", "NULL", "2 bytes 00ff"]]);
      const result = page.getByRole("table", { name: "Result", exact: true });
      assert.equal(await result.locator("img").count(), 0);
      // NULL looks unlike the text "NULL".
      const [nullCell, wordCell] = await result.locator("tbody td").evaluateAll((cells) => cells.slice(2, 4).map((c) => `${c.className} ${getComputedStyle(c).fontStyle}`));
      assert.equal(nullCell, "db-cell db-cell--null italic");
      assert.equal(wordCell, "db-cell db-cell--text normal");
      assert.equal(await page.evaluate(() => window.__pwned), undefined, "the markup never ran");
      await screenshot(page, "database-result");
      assert.equal(await page.evaluate(() => document.querySelectorAll("main img").length), 0);

      // The database's own message for a bad statement; a second one is heard again.
      await runSql(page, "SELECT * FROM nope");
      await alert(page, "The database says: no such table: nope");
      await runSql(page, "SELEC 1");
      await alert(page, 'The database says: near "SELEC": syntax error');
      assert.equal(await page.getByRole("table", { name: "Result", exact: true }).count(), 0, "no stale result beside the error");

      // Delete names what goes; Cancel keeps it; confirmed, it is gone and a new one is empty.
      await page.getByRole("button", { name: "Delete the database" }).click();
      await page.getByText("Delete the database for good? You lose notes (60 rows).").waitFor();
      await page.getByRole("button", { name: "Cancel" }).click();
      assert.equal((await context.request.get("/api/v1/database")).status(), 200, "cancel keeps it");
      await page.getByRole("button", { name: "Delete the database" }).click();
      await page.getByRole("button", { name: "Yes, delete the database" }).click();
      await status(page, "Database deleted, with everything in it.");
      await page.getByRole("heading", { name: "No database yet" }).waitFor();
      assert.equal((await context.request.get("/api/v1/database")).status(), 404);
      await focusIs(page, "db-create");
      await page.getByRole("button", { name: "Create database" }).click();
      await status(page, "Database created");
      await page.getByText("No tables yet.").waitFor();
      assert.deepEqual((await (await context.request.get("/api/v1/database/tables")).json()).tables, []);
      await page.reload();
      await page.getByRole("heading", { name: "Your database" }).waitFor();
      await page.getByText("No tables yet.").waitFor();
    });
  });

  it("shows the row a deployed FastAPI app wrote with DATABASE_PATH", { timeout: 180_000 }, async () => {
    await withPage("app", async ({ page, context }) => {
      await signUpApi(context);
      assert.equal((await context.request.post("/api/v1/database")).status(), 201);
      const created = await context.request.post("/api/v1/apps", { data: { name: "notes", runtime: "python" } });
      assert.equal(created.status(), 201);
      const { id, url } = await created.json();
      const deployed = await context.request.post(`/api/v1/apps/${id}/deploy`, { data: { files: { "main.py": NOTES_APP } } });
      assert.equal(deployed.status(), 202, await deployed.text());

      // The app's page says what it gets, and links to the viewer.
      await page.goto(`/apps/${id}`);
      await page.getByRole("heading", { level: 1, name: "notes" }).waitFor();
      await page.getByRole("status").filter({ hasText: "Version 1 deployed: healthy." }).waitFor(SLOW);
      const panel = page.getByRole("region", { name: "Database", exact: true });
      await panel.getByText("DATABASE_URL=sqlite:////data/app.sqlite").waitFor();
      await panel.getByText("DATABASE_PATH=/data/app.sqlite").waitFor();

      const wrote = await context.request.post(`${url}notes?text=${encodeURIComponent("written by the app")}`);
      assert.equal(wrote.status(), 200, await wrote.text());
      assert.deepEqual(await wrote.json(), { ok: true });

      await panel.getByRole("link", { name: "See its tables and run SQL" }).click();
      await waitForPath(page, "/database");
      await tableRow(page, "notes").getByRole("cell", { name: "1", exact: true }).waitFor();
      await tableRow(page, "notes").getByRole("button", { name: "notes" }).click();
      await status(page, "Row 1 of 1");
      assert.deepEqual(await gridRows(page, "Rows of notes"), [["1", "1", "written by the app"]]);
    });
  });

  it("shows another user their own database, never the first user's", { timeout: 60_000 }, async () => {
    const owner = await openPage(browser, server.baseURL);
    try {
      await signUpApi(owner.context, "own");
      assert.equal((await owner.context.request.post("/api/v1/database")).status(), 201);
      await writeApi(owner.context, "CREATE TABLE secrets_of_owner (id INTEGER PRIMARY KEY, text TEXT)");
      await writeApi(owner.context, "INSERT INTO secrets_of_owner (text) VALUES ('only mine')");
      await owner.page.goto("/database");
      await tableRow(owner.page, "secrets_of_owner").waitFor();

      await withPage("other-user", async ({ page, context }) => {
        await signUpApi(context, "oth");
        await page.goto("/database");
        await page.getByRole("heading", { name: "No database yet" }).waitFor();
        assert.equal((await context.request.get("/api/v1/database/tables")).status(), 404);
        assert.equal((await context.request.post("/api/v1/database/query", { data: { sql: "SELECT * FROM secrets_of_owner" } })).status(), 404);
        await page.getByRole("button", { name: "Create database" }).click();
        await page.getByText("No tables yet.").waitFor();
        await runSql(page, "SELECT * FROM secrets_of_owner");
        await alert(page, "The database says: no such table: secrets_of_owner");
        assert.equal((await page.content()).includes("only mine"), false);
      });

      // The owner's is as it was.
      await owner.page.reload();
      await tableRow(owner.page, "secrets_of_owner").getByRole("cell", { name: "1", exact: true }).waitFor();
      assert.deepEqual(owner.errors.map(String), []);
    } finally {
      await owner.context.close();
    }
  });

  it("on PostgreSQL: shows the role's credentials once, copies them, rotates the password, and views its tables", { timeout: 180_000 }, async () => {
    const postgres = await startPostgres();
    let pgServer;
    try {
      pgServer = await startServer({ env: { SANDPIT_USER_DATABASES__POSTGRES_URL: postgres.url } });
      const on = pgServer;
      await withPage(
        "postgres",
        async ({ page, context }) => {
          await signUpApi(context, "pg");
          await page.goto("/database");
          await page.getByRole("button", { name: "Create database" }).click();
          await status(page, "Database created: PostgreSQL, sp_");

          // The credentials, once: focus on the password, selected, ready to copy.
          const panel = page.getByRole("region", { name: /^Credentials of sp_/ });
          await panel.getByText("Copy them now: they are shown only this once.").waitFor();
          await focusIs(page, "db-password");
          const password = await panel.getByLabel("Password", { exact: true }).inputValue();
          assert.match(password, /^\S{16,}$/);
          const { name } = await (await context.request.get("/api/v1/database")).json();
          assert.equal(await panel.getByLabel("Username").inputValue(), name);
          const url = await panel.getByLabel("DATABASE_URL").inputValue();
          assert.ok(url.includes(`${name}:${password}@`), url);
          await panel.getByRole("button", { name: "Copy Password" }).click();
          await panel.getByRole("button", { name: "Copied Password" }).waitFor();
          assert.equal(await page.evaluate(() => navigator.clipboard.readText()), password);
          await panel.getByRole("button", { name: "Copy DATABASE_URL" }).click();
          assert.equal(await page.evaluate(() => navigator.clipboard.readText()), url);
          assert.equal((await (await context.request.get("/api/v1/database")).text()).includes(password), false, "the API never answers it again");
          const facts = await page.locator(".db-facts").innerText();
          assert.match(facts, /Engine\s+PostgreSQL/);
          assert.match(facts, /Password set\s+\S/);
          assert.equal(facts.includes(password), false, "the facts leave the password out");
          await screenshot(page, "database-postgres-credentials");

          // The viewer on PostgreSQL: its types, NOT NULL, booleans, paging.
          await runWriting(page, "CREATE TABLE notes (id serial PRIMARY KEY, text text NOT NULL)", "Done: no rows changed.");
          await runWriting(page, "INSERT INTO notes (text) SELECT 'note ' || i FROM generate_series(1, 60) i", "Done: 60 rows changed.");
          await tableRow(page, "notes").getByRole("cell", { name: "60", exact: true }).waitFor();
          await tableRow(page, "notes").getByRole("button", { name: "notes" }).click();
          const columns = page.getByRole("table", { name: "Columns of notes" });
          assert.match(await columns.getByRole("row").filter({ hasText: "id" }).innerText(), /id\s+integer\s+yes\s+yes/);
          assert.match(await columns.getByRole("row").filter({ hasText: "text" }).innerText(), /text\s+text\s+no\s+yes/);
          await page.getByRole("navigation", { name: "Pages of notes" }).getByRole("button", { name: "Next page" }).click();
          await status(page, "Rows 51–60 of 60");
          await runSql(page, "SELECT true AS yes, NULL::text AS missing");
          await status(page, "1 row.");
          assert.deepEqual(await gridRows(page, "Result"), [["1", "true", "NULL"]]);

          // Gone on reload: nothing shows the password again.
          await page.reload();
          await page.getByRole("heading", { name: "Your database" }).waitFor();
          assert.equal(await page.getByRole("region", { name: /^Credentials of/ }).count(), 0);
          assert.equal((await page.content()).includes(password), false);

          // Rotate asks first; Cancel keeps the password, confirmed a new one is shown once.
          await page.getByRole("button", { name: "Rotate password" }).click();
          await page.getByRole("group", { name: "Rotate the password?" }).getByText("The old password stops working at once.").waitFor();
          await page.waitForFunction(() => document.activeElement?.textContent === "Cancel");
          await page.getByRole("button", { name: "Cancel" }).click();
          await page.waitForFunction(() => document.activeElement?.textContent === "Rotate password");
          await page.getByRole("button", { name: "Rotate password" }).click();
          await page.getByRole("button", { name: "Yes, rotate" }).click();
          await status(page, "New password made: the old one no longer works.");
          const rotated = await panel.getByLabel("Password", { exact: true }).inputValue();
          assert.notEqual(rotated, password);
          assert.match(await panel.getByLabel("DATABASE_URL").inputValue(), new RegExp(`:${rotated}@`));
          await focusIs(page, "db-password");
          await panel.getByRole("button", { name: "Done: I have them" }).click();
          await panel.waitFor({ state: "detached" });
          await focusIs(page, "db-heading");
        },
        { on, permissions: ["clipboard-read", "clipboard-write"] },
      );
    } finally {
      await pgServer?.stop();
      await postgres.stop();
    }
  });
});
