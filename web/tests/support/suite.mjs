// One real server (fresh data directory) and one headless Chromium per test file: started
// before its tests, stopped after them.
import { after, before } from "node:test";
import { launchBrowser } from "./browser.mjs";
import { startServer } from "./server.mjs";

/**
 * Registers the file's `before`/`after` hooks and returns the handles they fill in.
 * @param {Parameters<typeof startServer>[0]} [options]
 * @returns {{ server: Awaited<ReturnType<typeof startServer>>, browser: import("playwright-core").Browser }}
 */
export function serverAndBrowser(options) {
  const suite = /** @type {any} */ ({});
  before(async () => {
    suite.server = await startServer(options);
    suite.browser = await launchBrowser();
  });
  after(async () => {
    await suite.browser?.close();
    await suite.server?.stop();
  });
  return suite;
}
