// Sign-up, sign-in, sign-out and routing, in a real Chromium against the real server.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, pathOf, screenshot, uniqueUsername, waitForPath } from "./support/browser.mjs";
import { startServer } from "./support/server.mjs";

const PASSWORD = "correct horse battery";

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

/** Opens a fresh context; on failure of `fn` the server's logs are attached to the error. */
async function withPage(fn) {
  const session = await openPage(browser, server.baseURL);
  try {
    await fn(session);
    assert.deepEqual(session.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    error.message += `\n${server.logs()}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

async function fillSignup(page, username, password, email) {
  await page.getByLabel("Username").fill(username);
  if (email !== undefined) await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
}

async function signUpViaForm(page, username, password = PASSWORD) {
  await page.goto("/signup");
  await fillSignup(page, username, password);
  await page.getByRole("button", { name: "Sign up" }).click();
  await waitForPath(page, "/");
  await welcome(page, username).waitFor();
}

async function signInViaForm(page, username, password = PASSWORD) {
  await page.goto("/signin");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Password").press("Enter");
}

const welcome = (page, username) => page.getByRole("heading", { level: 1, name: `Welcome, ${username}` });
const signInHeading = (page) => page.getByRole("heading", { level: 1, name: "Sign in to sandpit" });

describe("auth pages", () => {
  it("signs up a new user in the form and lands on / showing the username and role", async () => {
    await withPage(async ({ context, page }) => {
      const username = uniqueUsername();
      await page.goto("/signup");
      await page.getByRole("heading", { level: 1, name: "Create your sandpit account" }).waitFor();
      assert.equal(await page.title(), "Sign up · sandpit");
      await fillSignup(page, username, PASSWORD, `${username}@example.test`);
      await screenshot(page, "signup");
      await page.getByRole("button", { name: "Sign up" }).click();

      await waitForPath(page, "/");
      await welcome(page, username).waitFor();
      const me = await (await context.request.get("/api/v1/auth/me")).json();
      assert.equal(me.username, username);
      assert.equal((await page.getByTestId("role").textContent())?.trim(), me.role);
      assert.ok(await page.getByText(`${username}@example.test`).isVisible(), "email shown on the landing page");
      assert.equal(await page.getByRole("link", { name: "API docs" }).getAttribute("href"), "/api/docs");

      const cookie = (await context.cookies()).find((c) => c.name === "sandpit_session");
      assert.ok(cookie, "session cookie set");
      assert.equal(cookie.httpOnly, true, "session cookie is HttpOnly");
      assert.equal(await page.evaluate(() => document.cookie.includes("sandpit_session")), false);

      await screenshot(page, "landing");
    });
  });

  it("stays signed in across a reload (session cookie)", async () => {
    await withPage(async ({ page }) => {
      const username = uniqueUsername();
      await signUpViaForm(page, username);
      const meAfterReload = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/me"));
      await page.reload();
      assert.equal((await meAfterReload).status(), 200);
      await welcome(page, username).waitFor();
      assert.equal(pathOf(page), "/");
    });
  });

  it("signs out to /signin, and signs in again with Enter", async () => {
    await withPage(async ({ context, page }) => {
      const username = uniqueUsername();
      await signUpViaForm(page, username);

      await page.getByRole("button", { name: "Sign out" }).click();
      await waitForPath(page, "/signin");
      await signInHeading(page).waitFor();
      await page.waitForFunction(() => document.activeElement?.id === "username");
      assert.equal((await context.request.get("/api/v1/auth/me")).status(), 401, "server session ended");

      // The landing page is no longer reachable.
      await page.goto("/");
      await waitForPath(page, "/signin");

      await signInViaForm(page, username);
      await waitForPath(page, "/");
      await welcome(page, username).waitFor();
    });
  });

  it("disables the button and shows 'Signing in…' while the request is pending", async () => {
    await withPage(async ({ page }) => {
      const username = uniqueUsername();
      await signUpViaForm(page, username);
      await page.getByRole("button", { name: "Sign out" }).click();
      await waitForPath(page, "/signin");

      let release;
      const gate = new Promise((resolve) => (release = resolve));
      await page.route("**/api/v1/auth/login", async (route) => {
        await gate;
        await route.continue();
      });
      await page.getByLabel("Username").fill(username);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();

      const pending = page.getByRole("button", { name: "Signing in…" });
      await pending.waitFor();
      assert.equal(await pending.isDisabled(), true);
      release();
      await waitForPath(page, "/");
      await welcome(page, username).waitFor();
    });
  });

  it("shows a readable error for a wrong password and stays on /signin", async () => {
    await withPage(async ({ context, page }) => {
      const username = uniqueUsername();
      await signUpViaForm(page, username);
      await page.getByRole("button", { name: "Sign out" }).click();
      await waitForPath(page, "/signin");
      await screenshot(page, "signin");

      await signInViaForm(page, username, "definitely-wrong-password");
      const alert = page.getByRole("alert");
      await alert.waitFor();
      const shown = (await alert.textContent())?.trim() ?? "";

      const direct = await context.request.post("/api/v1/auth/login", {
        data: { username, password: "definitely-wrong-password" },
      });
      assert.equal(direct.status(), 401);
      const { error } = await direct.json();
      assert.equal(shown, error.message, "the envelope's message is what the user sees");
      assert.ok(shown.length > 0);
      assert.doesNotMatch(await page.locator("main").innerText(), /[{}]|"error"|"code"/, "no raw JSON on the page");
      assert.equal(pathOf(page), "/signin");
      assert.equal(await page.getByRole("button", { name: "Sign in" }).isEnabled(), true, "can try again");
      await screenshot(page, "signin-error");
    });
  });

  it("shows the conflict message when signing up an existing username", async () => {
    await withPage(async ({ context, page }) => {
      const username = uniqueUsername();
      const created = await context.request.post("/api/v1/auth/signup", { data: { username, password: PASSWORD } });
      assert.equal(created.status(), 201);
      await context.clearCookies();

      await page.goto("/signup");
      await fillSignup(page, username, PASSWORD);
      await page.getByRole("button", { name: "Sign up" }).click();
      const alert = page.getByRole("alert");
      await alert.waitFor();

      const again = await context.request.post("/api/v1/auth/signup", { data: { username, password: PASSWORD } });
      assert.equal(again.status(), 409);
      const { error } = await again.json();
      assert.equal(error.code, "conflict");
      assert.equal((await alert.textContent())?.trim(), error.message);
      assert.equal(pathOf(page), "/signup");
    });
  });

  it("blocks an invalid username in the browser before sending it", async () => {
    await withPage(async ({ page }) => {
      let sent = 0;
      page.on("request", (r) => {
        if (r.url().endsWith("/api/v1/auth/signup")) sent += 1;
      });
      await page.goto("/signup");
      await fillSignup(page, "-bad name", PASSWORD);
      await page.getByRole("button", { name: "Sign up" }).click();
      const valid = await page.getByLabel("Username").evaluate((el) => el.checkValidity());
      assert.equal(valid, false);
      assert.equal(sent, 0, "no request for a username the server would reject");
      assert.equal(pathOf(page), "/signup");
    });
  });

  it("shows 'Sign in with GitHub' only when the server offers it", async () => {
    await withPage(async ({ page }) => {
      const providers = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/providers"));
      await page.goto("/signin");
      const offered = (await (await providers).json()).github;
      await signInHeading(page).waitFor();
      const link = page.getByRole("link", { name: "Sign in with GitHub" });
      assert.equal(await link.count(), offered ? 1 : 0, `github offered: ${offered}`);

      await page.route("**/api/v1/auth/providers", (route) =>
        route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ github: !offered }) }),
      );
      await page.reload();
      await signInHeading(page).waitFor();
      if (!offered) {
        await link.waitFor();
        assert.equal(await link.getAttribute("href"), "/api/v1/auth/github");
      } else {
        await page.waitForLoadState("networkidle");
        assert.equal(await link.count(), 0);
      }
    });
  });

  it("serves the app for unknown paths: /signin when signed out, 'not found' when signed in", async () => {
    await withPage(async ({ page }) => {
      const response = await page.goto("/nowhere");
      assert.equal(response?.status(), 200);
      assert.match(response?.headers()["content-type"] ?? "", /text\/html/);
      await waitForPath(page, "/signin");
      await signInHeading(page).waitFor();

      const username = uniqueUsername();
      await signUpViaForm(page, username);
      await page.goto("/nowhere/deeper");
      await page.getByRole("heading", { level: 1, name: "Page not found" }).waitFor();
      assert.equal(pathOf(page), "/nowhere/deeper");
      await page.getByRole("link", { name: "Go to the home page" }).click();
      await waitForPath(page, "/");
      await welcome(page, username).waitFor();

      // Unknown API paths are API errors, not the app.
      const api = await page.request.get("/api/v1/nowhere");
      assert.equal(api.status(), 404);
      assert.doesNotMatch(api.headers()["content-type"] ?? "", /text\/html/);
    });
  });

  it("lays out the sign-in page at a narrow width", async () => {
    await withPage(async ({ page }) => {
      await page.setViewportSize({ width: 375, height: 740 });
      await page.goto("/signin");
      await signInHeading(page).waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
      await screenshot(page, "signin-narrow");
    });
  });
});
