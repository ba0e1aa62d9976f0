// The sessions page (time left, extend, end, share) and the read-only shared terminal, in a
// real Chromium against the real server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openPage, screenshot, uniqueUsername } from "./support/browser.mjs";
import { serverAndBrowser } from "./support/suite.mjs";

const suite = serverAndBrowser();

async function signedInSession(prefix) {
  const session = await openPage(suite.browser, suite.server.baseURL);
  const signup = await session.context.request.post("/api/v1/auth/signup", {
    data: { username: uniqueUsername(prefix), password: "correct horse battery" },
  });
  assert.equal(signup.status(), 201);
  return session;
}

async function withUsers(count, fn) {
  const sessions = [];
  try {
    for (let i = 0; i < count; i++) sessions.push(await signedInSession(`s${i}`));
    await fn(...sessions);
    for (const s of sessions) assert.deepEqual(s.errors.map(String), [], "uncaught errors in the page");
  } catch (error) {
    error.message += `\n${suite.server.logs()}`;
    throw error;
  } finally {
    for (const s of sessions) await s.context.close();
  }
}

/** "12:34" or "1:02:03" → seconds. */
function seconds(text) {
  const parts = text.trim().split(":").map(Number);
  assert.ok(parts.length >= 2 && parts.every(Number.isFinite), `a time left, not ${JSON.stringify(text)}`);
  return parts.reduce((total, n) => total * 60 + n, 0);
}

const item = (page, title) =>
  page.getByRole("list", { name: "Live sessions" }).getByRole("listitem").filter({ has: page.getByRole("heading", { level: 2, name: title, exact: true }) });
const timeLeft = async (page, title) => seconds((await item(page, title).getByTestId("time-left").textContent()) ?? "");

describe("sessions", () => {
  it("lists lab and plain sessions with time left; extend and end work", async () => {
    await withUsers(1, async ({ context, page }) => {
      const lab = await context.request.post("/api/v1/labs/shell-basics/start", { data: {} });
      assert.equal(lab.status(), 201, await lab.text());
      const labSession = (await lab.json()).session;
      const plain = await context.request.post("/api/v1/sessions", { data: { ttl_seconds: 300 } });
      assert.equal(plain.status(), 201, await plain.text());
      const plainSession = await plain.json();
      const labTitle = (await (await context.request.get("/api/v1/labs/shell-basics")).json()).title;
      const plainTitle = `Sandbox (${plainSession.environment})`;

      await page.goto("/sessions");
      await page.getByRole("heading", { level: 1, name: "Sessions" }).waitFor();
      await page.getByRole("list", { name: "Live sessions" }).waitFor();
      assert.equal(await page.getByRole("list", { name: "Live sessions" }).getByRole("heading", { level: 2 }).count(), 2);
      await item(page, labTitle).waitFor();
      const open = item(page, labTitle).getByRole("link", { name: `Open ${labTitle}` });
      assert.equal(await open.getAttribute("href"), "/labs/shell-basics");
      assert.equal(await item(page, plainTitle).getByRole("link").count(), 0, "a plain session has no workspace link");

      const plainLeft = await timeLeft(page, plainTitle);
      assert.ok(plainLeft > 240 && plainLeft <= 300, `plain session: ${plainLeft} s left of 300`);
      assert.ok((await timeLeft(page, labTitle)) > 600, "the lab's own TTL (30 min)");
      // It ticks.
      await page.waitForFunction(
        (before) => {
          const cells = [...document.querySelectorAll("[data-testid=time-left]")].map((c) => c.textContent);
          return !cells.includes(before);
        },
        (await item(page, plainTitle).getByTestId("time-left").textContent()) ?? "",
        { timeout: 5000 },
      );
      await screenshot(page, "sessions");

      // Extend: the server's default TTL (30 min) from now.
      await item(page, plainTitle).getByRole("button", { name: `Extend ${plainTitle}` }).click();
      await page.waitForFunction(() =>
        [...document.querySelectorAll("[data-testid=time-left]")].every((c) => (c.textContent ?? "").split(":").length === 2 && Number((c.textContent ?? "").split(":")[0]) >= 20),
      );
      assert.ok((await timeLeft(page, plainTitle)) > 25 * 60, "extended to about 30 minutes");
      const extended = await (await context.request.get(`/api/v1/sessions/${plainSession.id}`)).json();
      assert.ok(new Date(extended.expires_at) > new Date(plainSession.expires_at), "the server moved expires_at");

      // End, after confirming; cancelling first keeps it.
      const labItem = item(page, labTitle);
      await labItem.getByRole("button", { name: `End ${labTitle}`, exact: true }).click();
      const dialog = labItem.getByRole("alertdialog");
      await dialog.waitFor();
      await dialog.getByRole("button", { name: "Cancel" }).click();
      assert.equal(await dialog.count(), 0);
      assert.equal((await (await context.request.get(`/api/v1/sessions/${labSession.id}`)).json()).status !== "ended", true);
      await labItem.getByRole("button", { name: `End ${labTitle}`, exact: true }).click();
      await labItem.getByRole("alertdialog").getByRole("button", { name: "End session" }).click();
      await labItem.waitFor({ state: "detached" });
      assert.equal(await page.getByRole("list", { name: "Live sessions" }).getByRole("heading", { level: 2 }).count(), 1);
      const ended = await (await context.request.get(`/api/v1/sessions/${labSession.id}`)).json();
      assert.equal(ended.status, "ended");
      assert.equal(ended.end_reason, "user");
    });
  });

  it("shares a read-only terminal that another user sees with the owner's screen", async () => {
    await withUsers(2, async (owner, viewer) => {
      const created = await owner.context.request.post("/api/v1/sessions", { data: {} });
      assert.equal(created.status(), 201, await created.text());
      const { id } = await created.json();

      await owner.page.goto("/sessions");
      const plainTitle = /^Sandbox \(/;
      const row = owner.page.getByRole("list", { name: "Live sessions" }).getByRole("listitem").filter({ has: owner.page.getByRole("heading", { name: plainTitle }) });
      await row.getByRole("button", { name: "Share read-only terminal" }).click();
      const linkField = row.getByRole("textbox", { name: "Read-only link" });
      await linkField.waitFor();
      const link = await linkField.inputValue();
      const url = new URL(link);
      assert.equal(url.origin, suite.server.baseURL);
      assert.equal(url.pathname, `/share/${id}`);
      assert.ok(url.searchParams.get("token"), "the link carries the share token");
      await screenshot(owner.page, "sessions-share");

      // The owner types in their own terminal (a WebSocket from their page, as the workspace does).
      const marker = await owner.page.evaluate(async (sessionId) => {
        const socket = new WebSocket(`${location.origin.replace(/^http/, "ws")}/api/v1/sessions/${sessionId}/terminal`);
        socket.binaryType = "arraybuffer";
        window.__ownerSocket = socket;
        let screen = "";
        const decoder = new TextDecoder();
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no output; screen so far: ${screen}`)), 15_000);
          let sent = false;
          socket.onmessage = (event) => {
            if (typeof event.data === "string") {
              if (!sent && JSON.parse(event.data).type === "hello") {
                sent = true;
                socket.send(new TextEncoder().encode("echo shared-$((6*7))-view\r"));
              }
              return;
            }
            screen += decoder.decode(event.data, { stream: true });
            if (screen.includes("shared-42-view")) {
              clearTimeout(timer);
              resolve("shared-42-view");
            }
          };
          socket.onerror = () => reject(new Error("owner socket failed"));
        });
      }, id);

      await viewer.page.goto(`${url.pathname}${url.search}`);
      await viewer.page.getByRole("heading", { level: 1, name: "Shared terminal" }).waitFor();
      const terminal = viewer.page.getByRole("region", { name: "Shared terminal (read-only)" });
      await terminal.waitFor();
      await viewer.page.getByRole("status").filter({ hasText: "Watching live (read-only)" }).waitFor();
      await viewer.page.waitForFunction(
        (text) => document.querySelector(".terminal-view")?.textContent?.includes(text),
        marker,
        { timeout: 10_000 },
      );
      assert.match(await terminal.innerText(), /shared-42-view/);

      // Read-only: typing in the viewer reaches nobody's shell.
      await terminal.click();
      await viewer.page.keyboard.type("echo typed-by-viewer\r");
      await viewer.page.waitForTimeout(700);
      assert.doesNotMatch(await terminal.innerText(), /typed-by-viewer/);
      await screenshot(viewer.page, "share-view");

      // A wrong token is refused with a readable message.
      await viewer.page.goto(`/share/${id}?token=not-the-token`);
      const alert = viewer.page.getByRole("alert");
      await alert.waitFor();
      assert.match((await alert.textContent()) ?? "", /not valid/);
      await owner.page.evaluate(() => window.__ownerSocket?.close());
    });
  });
});
