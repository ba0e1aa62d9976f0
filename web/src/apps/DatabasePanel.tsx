// On an app's page: what the app gets of its owner's database (DATABASE_URL, and for SQLite
// DATABASE_PATH) and a link to the viewer, or that there is none yet and where to make one.
import { useEffect, useState } from "preact/hooks";
import { database, SQLITE_PATH, type DatabaseView } from "../api/database";
import { Link } from "../router";

export function DatabasePanel() {
  // `undefined` while asking (or when it could not be asked), `null` for none.
  const [db, setDb] = useState<DatabaseView | null | undefined>(undefined);
  useEffect(() => {
    const controller = new AbortController();
    database.get(controller.signal).then(setDb, () => undefined);
    return () => controller.abort();
  }, []);

  return (
    <section class="panel" aria-labelledby="app-database-heading">
      <h2 id="app-database-heading">Database</h2>
      {db === null ? (
        <p>
          You have no database yet. Create one on the <Link href="/database">Database page</Link> and this app gets it as <code>DATABASE_URL</code> when it next
          starts (redeploy or restart it).
        </p>
      ) : db === undefined ? (
        <p>
          Your apps get your database, when you have one, as <code>DATABASE_URL</code>: see the <Link href="/database">Database page</Link>.
        </p>
      ) : (
        <>
          <p>
            When it starts, this app gets your database as <code>DATABASE_URL={db.app_url}</code>
            {db.engine === "sqlite" ? (
              <>
                {" "}
                and <code>DATABASE_PATH={SQLITE_PATH}</code>
              </>
            ) : null}
            .
          </p>
          <p>
            <Link href="/database">See its tables and run SQL</Link>
          </p>
        </>
      )}
    </section>
  );
}
