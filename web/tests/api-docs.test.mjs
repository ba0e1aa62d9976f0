// /api/docs renders Swagger UI from the bundled assets, with no request leaving the machine.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { launchBrowser, openPage, screenshot } from "./support/browser.mjs";
import { startServer } from "./support/server.mjs";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

it("renders the OpenAPI document in Swagger UI without leaving the origin", async () => {
  const { context, page, errors } = await openPage(browser, server.baseURL);
  try {
    const origin = new URL(server.baseURL).origin;
    const foreign = [];
    // Every request goes through here: same-origin ones proceed, anything else is recorded and cut.
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (new URL(url).origin === origin) return route.continue();
      foreign.push(url);
      return route.abort();
    });

    const spec = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/openapi.json");
    const response = await page.goto("/api/docs");
    assert.equal(response?.status(), 200);
    assert.equal((await spec).status(), 200);

    const signup = page.locator('.opblock-summary-path[data-path="/api/v1/auth/signup"]');
    await signup.waitFor({ timeout: 15_000 });
    // Swagger UI puts zero-width spaces before each "/" so long paths can wrap.
    assert.equal((await signup.innerText()).replace(/\u200b/g, "").trim(), "/api/v1/auth/signup");
    assert.ok((await page.locator(".opblock").count()) > 1, "several operations listed");
    assert.ok(await page.locator(".swagger-ui .info .title").isVisible(), "document title shown");

    await screenshot(page, "api-docs");
    assert.deepEqual(foreign, [], "requests beyond the server's origin");
    assert.deepEqual(errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    error.message += `\n${server.logs()}`;
    throw error;
  } finally {
    await context.close();
  }
});
