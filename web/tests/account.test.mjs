// The account page: who you are, and personal API tokens (created and shown once, used as a
// bearer token, revoked), in a real Chromium against the real server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openPage, screenshot, uniqueUsername } from "./support/browser.mjs";
import { serverAndBrowser } from "./support/suite.mjs";

const suite = serverAndBrowser();

async function withSignedInPage(fn) {
  const session = await openPage(suite.browser, suite.server.baseURL);
  try {
    const username = uniqueUsername("acc");
    const signup = await session.context.request.post("/api/v1/auth/signup", {
      data: { username, password: "correct horse battery" },
    });
    assert.equal(signup.status(), 201);
    await fn({ ...session, username });
    assert.deepEqual(session.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    error.message += `\n${suite.server.logs()}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

/** `GET /auth/me` from the page with only the bearer token (no cookie): the status and body. */
async function meWithBearer(page, secret) {
  return page.evaluate(async (token) => {
    const response = await fetch("/api/v1/auth/me", { credentials: "omit", headers: { Authorization: `Bearer ${token}` } });
    return { status: response.status, body: await response.json() };
  }, secret);
}

describe("account", () => {
  it("creates a token shown once that works as a bearer token until revoked", async () => {
    await withSignedInPage(async ({ page, username }) => {
      await page.goto("/account");
      await page.getByRole("heading", { level: 1, name: "Account" }).waitFor();
      assert.equal(await page.title(), "Account · sandpit");
      assert.equal((await page.getByTestId("username").textContent())?.trim(), username);
      await page.getByText("No tokens yet.").waitFor();

      await page.getByLabel("Token name").fill("laptop CLI");
      await page.getByLabel("Expires").selectOption({ label: "30 days" });
      await page.getByRole("button", { name: "Create token" }).click();

      const secretField = page.getByRole("textbox", { name: "New token" });
      await secretField.waitFor();
      const secret = await secretField.inputValue();
      assert.match(secret, /^spt_/);
      assert.match(await page.getByRole("region", { name: /Your new token/ }).innerText(), /shown only this once/);
      assert.ok(await page.getByRole("button", { name: "Copy", exact: true }).isVisible());

      const table = page.getByRole("table", { name: "Your tokens" });
      const row = table.getByRole("row").filter({ has: page.getByRole("rowheader", { name: "laptop CLI" }) });
      await row.waitFor();
      const cells = await row.getByRole("cell").allTextContents();
      assert.ok(secret.startsWith(cells[0].replace("…", "")), `the prefix ${cells[0]} is the secret's start`);
      assert.equal(cells[2].trim(), "never", "not used yet");
      assert.notEqual(cells[3].trim(), "never", "expires in 30 days");
      await screenshot(page, "account-token-created");

      const me = await meWithBearer(page, secret);
      assert.equal(me.status, 200);
      assert.equal(me.body.username, username);

      // Shown once: after a reload the secret is nowhere on the page, the token still listed.
      await page.reload();
      await row.waitFor();
      assert.equal(await page.getByRole("textbox", { name: "New token" }).count(), 0);
      assert.doesNotMatch(await page.locator("main").innerText(), new RegExp(secret));
      assert.notEqual((await row.getByRole("cell").nth(2).textContent())?.trim(), "never", "last used is shown");

      // Revoke, after confirming.
      await row.getByRole("button", { name: "Revoke laptop CLI" }).click();
      await row.getByRole("button", { name: "Cancel" }).click();
      assert.equal((await meWithBearer(page, secret)).status, 200, "cancel keeps the token");
      await row.getByRole("button", { name: "Revoke laptop CLI" }).click();
      await row.getByRole("button", { name: "Yes, revoke laptop CLI" }).click();
      await row.waitFor({ state: "detached" });
      await page.getByRole("status").filter({ hasText: "revoked" }).waitFor();
      const after = await meWithBearer(page, secret);
      assert.equal(after.status, 401);
      assert.equal(after.body.error.code, "unauthorized");
      await screenshot(page, "account-token-revoked");
    });
  });

  it("explains a blank token name instead of sending it", async () => {
    await withSignedInPage(async ({ page }) => {
      let sent = 0;
      page.on("request", (r) => {
        if (r.method() === "POST" && r.url().endsWith("/api/v1/tokens")) sent += 1;
      });
      await page.goto("/account");
      await page.getByLabel("Token name").fill("   ");
      await page.getByRole("button", { name: "Create token" }).click();
      const alert = page.getByRole("alert");
      await alert.waitFor();
      assert.match((await alert.textContent()) ?? "", /name/i);
      assert.equal(await page.getByRole("textbox", { name: "New token" }).count(), 0);
      assert.equal(sent, 0, "nothing sent");
    });
  });
});
