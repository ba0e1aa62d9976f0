// Starts the real sandpit server for a browser test: fresh data directory, port 0, JSON logs.
// The address comes from the `listening` log line, so tests never guess or share a port.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const repoDir = path.resolve(webDir, "..");

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_TAIL_CHARS = 16_000;

/** `SANDPIT_BIN` (relative paths are taken from web/), default ../target/debug/sandpit. */
export function serverBinary() {
  return path.resolve(webDir, process.env.SANDPIT_BIN ?? "../target/debug/sandpit");
}

function tail(text) {
  return text.length > LOG_TAIL_CHARS ? `…${text.slice(-LOG_TAIL_CHARS)}` : text;
}

/** The address in a `listening` log line, or null for any other line. */
function listeningAddr(line) {
  let record;
  try {
    record = JSON.parse(line);
  } catch {
    return null;
  }
  const fields = record?.fields ?? {};
  const message = fields.message ?? record?.message;
  const addr = fields.addr ?? record?.addr;
  return message === "listening" && typeof addr === "string" ? addr : null;
}

/**
 * `env` adds to (or overrides) the test's own environment; `unset` names variables of it the
 * server must not see (a test of "not configured" must not depend on the shell it runs in).
 * @param {{ env?: Record<string, string>, unset?: string[] }} [options]
 * @returns {Promise<{ baseURL: string, logs: () => string, stop: () => Promise<void> }>}
 */
export async function startServer({ env = {}, unset = [] } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(`sandpit binary not found at ${bin}: run \`cargo build -p sandpit\` or set SANDPIT_BIN`);
  }
  if (!existsSync(path.join(webDir, "dist", "index.html"))) {
    throw new Error("web/dist/index.html is missing: run `npm run build` in web/ first");
  }

  const dataDir = await mkdtemp(path.join(tmpdir(), "sandpit-web-test-"));
  const inherited = { ...process.env };
  for (const name of unset) delete inherited[name];
  const child = spawn(bin, ["serve"], {
    cwd: repoDir,
    env: {
      ...inherited,
      SANDPIT_DATA_DIR: dataDir,
      SANDPIT_SERVER__BIND: "127.0.0.1:0",
      SANDPIT_LOG__FORMAT: "json",
      SANDPIT_RATE_LIMIT__AUTH_PER_MINUTE: "1000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });

  let stdout = "";
  let stderr = "";
  const logs = () => `--- server stdout ---\n${tail(stdout)}\n--- server stderr ---\n${tail(stderr)}`;
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));

  // Keep draining both pipes for the server's whole life, so it never blocks on a full pipe.
  child.stderr.setEncoding("utf8").on("data", (chunk) => {
    stderr = tail(stderr + chunk);
  });
  const addr = await new Promise((resolve, reject) => {
    let pending = "";
    let found = false;
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      stdout = tail(stdout + chunk);
      if (found) return;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const a = listeningAddr(line);
        if (a) {
          found = true;
          clearTimeout(timer);
          resolve(a);
          return;
        }
      }
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${bin}: ${error.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      if (!found) reject(new Error(`sandpit exited (code ${code}, signal ${signal}) before listening\n${logs()}`));
    });
    const timer = setTimeout(() => {
      reject(new Error(`sandpit did not log "listening" within ${START_TIMEOUT_MS} ms\n${logs()}`));
    }, START_TIMEOUT_MS);
  }).catch(async (error) => {
    await stopChild(child, exited);
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  });

  return {
    baseURL: `http://${addr}`,
    logs,
    async stop() {
      await stopChild(child, exited);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function stopChild(child, exited) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), STOP_TIMEOUT_MS));
  if ((await Promise.race([exited, timeout])) === "timeout") {
    child.kill("SIGKILL");
    await exited;
  }
}
