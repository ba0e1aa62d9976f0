// Chromium from the system (Debian's package), driven by playwright-core: no browser download.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";
import { webDir } from "./server.mjs";

export const resultsDir = path.join(webDir, "test-results");

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A fresh context (own cookies) and page. Uncaught page errors are collected in `errors`; tests
 * assert it is empty, so a crash in the app fails the test even if the page still looks right.
 */
export async function openPage(browser, baseURL, options = {}) {
  const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 800 }, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error));
  return { context, page, errors };
}

export async function screenshot(page, name) {
  await mkdir(resultsDir, { recursive: true });
  await page.screenshot({ path: path.join(resultsDir, `${name}.png`), fullPage: true });
}

let counter = 0;
/** A username valid for the server's rules and unique per run. */
export function uniqueUsername(prefix = "u") {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${process.pid.toString(36)}_${counter}`.slice(0, 32);
}

/** The path of the page's URL, for assertions after client-side navigation. */
export function pathOf(page) {
  return new URL(page.url()).pathname;
}

export async function waitForPath(page, pathname) {
  await page.waitForURL((url) => url.pathname === pathname, { timeout: 10_000 });
}
