// A throwaway PostgreSQL server for a browser test, made by scripts/pg-test-server as the
// server's own tests get theirs (initdb, a free port, its superuser trusted, other roles
// signing in with their passwords): its superuser's URL, and `stop()`.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { repoDir } from "./server.mjs";

const run = promisify(execFile);
const script = path.join(repoDir, "scripts", "pg-test-server");

/** @returns {Promise<{ url: string, stop: () => Promise<void> }>} */
export async function startPostgres() {
  const { stdout } = await run(script, ["start"], { cwd: repoDir });
  // `export SANDPIT_TEST_PG_URL=…; export SANDPIT_TEST_PG_PID=…; export SANDPIT_TEST_PG_DIR=…`
  const vars = Object.fromEntries([...stdout.matchAll(/export (SANDPIT_TEST_PG_[A-Z]+)=([^;\s]+)/g)].map((m) => [m[1], m[2]]));
  const url = vars.SANDPIT_TEST_PG_URL;
  if (!url || !vars.SANDPIT_TEST_PG_PID || !vars.SANDPIT_TEST_PG_DIR) throw new Error(`scripts/pg-test-server said: ${stdout}`);
  return {
    url,
    async stop() {
      await run(script, ["stop"], { cwd: repoDir, env: { ...process.env, ...vars } });
    },
  };
}
