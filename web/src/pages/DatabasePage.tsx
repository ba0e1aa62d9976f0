// `/database`: the user's own database (issue 13). None yet: what it is, and Create. Then what
// it is (engine, name, what apps get as DATABASE_URL, size), a PostgreSQL role's credentials in
// a panel shown once (from the answer that made or rotated them: gone on reload), Rotate for
// PostgreSQL, the tables with their columns and rows a page at a time, the SQL console, and
// Delete after a confirm naming what goes. A lazy chunk (app.tsx).
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../api";
import { database, engineLabels, SQLITE_PATH, type Credentials, type DatabaseCreated, type DatabaseView, type TableView } from "../api/database";
import { ConfirmDelete } from "../components/ConfirmDelete";
import { LoadStatus, useLoad } from "../components/LoadStatus";
import { formatBytes, rotatedText, whatIsLost } from "../database/cells";
import { SqlConsole } from "../database/SqlConsole";
import { TableBrowser } from "../database/TableBrowser";
import { formatWhen } from "../time";
import { usePageTitle } from "../usePageTitle";
import { errorMessage } from "./CatalogPage";
import "./pages.css";
import "./apps.css";
import "./database.css";

/** Puts focus on an element after the one that had it went away (a button that was replaced). */
const focusSoon = (id: string) => requestAnimationFrame(() => document.getElementById(id)?.focus());

export function DatabasePage() {
  usePageTitle("Database");
  const [reload, setReload] = useState(0);
  const [notice, setNotice] = useState("");
  const [credentials, setCredentials] = useState<Credentials | null>(null);
  const [load, setLoad] = useLoad(async (signal) => ({ database: await database.get(signal) }), [reload], errorMessage);

  const lead = (
    <p class="page__lead">
      One database of your own, for your apps: each one gets it as <code>DATABASE_URL</code> when it starts. Here you see its tables and rows and run SQL. Nobody else,
      and no one else's app, can reach it.
    </p>
  );
  if (load.state !== "ready") {
    return (
      <section class="page" aria-labelledby="database-heading">
        <h1 id="database-heading">Database</h1>
        {lead}
        <LoadStatus load={load} loading="Loading your database…" onRetry={() => setReload((n) => n + 1)} />
      </section>
    );
  }

  const made = (created: DatabaseCreated, said: string) => {
    setLoad({ state: "ready", database: created.database });
    setCredentials(created.credentials ?? null);
    setNotice(said);
  };
  // Its size changes with writes; a failure here leaves what is shown.
  const refresh = () => {
    database.get().then(
      (view) => setLoad({ state: "ready", database: view }),
      () => undefined,
    );
  };

  return (
    <section class="page db-page" aria-labelledby="database-heading">
      <h1 id="database-heading">Database</h1>
      {lead}
      <p class="status-line" role="status">
        {notice}
      </p>
      {load.database === null ? (
        <CreateDatabase
          onCreated={(created) => {
            made(created, `Database created: ${engineLabels[created.database.engine] ?? created.database.engine}, ${created.database.name}.`);
            if (!created.credentials) focusSoon("db-heading");
          }}
          onExists={() => setReload((n) => n + 1)}
        />
      ) : (
        <>
          {credentials ? (
            <CredentialsPanel
              key={credentials.password}
              credentials={credentials}
              onDismiss={() => {
                setCredentials(null);
                focusSoon("db-heading");
              }}
            />
          ) : null}
          <Overview database={load.database} onRotated={(rotated) => made(rotated, rotatedText(rotated.redeploys))} />
          <Viewer
            onWrote={refresh}
            onDeleted={() => {
              setLoad({ state: "ready", database: null });
              setCredentials(null);
              setNotice("Database deleted, with everything in it.");
              focusSoon("db-create");
            }}
          />
        </>
      )}
    </section>
  );
}

interface CreateProps {
  onCreated: (created: DatabaseCreated) => void;
  /** It was made meanwhile (another tab): show it. */
  onExists: () => void;
}

function CreateDatabase({ onCreated, onExists }: CreateProps) {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const create = async () => {
    setPending(true);
    setError(null);
    try {
      onCreated(await database.create());
    } catch (caught) {
      if (caught instanceof ApiError && caught.code === "database_exists") {
        onExists();
        return;
      }
      setError(errorMessage(caught));
      setPending(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="db-none-heading">
      <h2 id="db-none-heading">No database yet</h2>
      <p>
        Create one, and every app you deploy or start from then on gets it as <code>DATABASE_URL</code> (a SQLite file also as <code>DATABASE_PATH={SQLITE_PATH}</code>
        ). The tables your apps make show up here.
      </p>
      {error !== null ? (
        <p role="alert" class="alert">
          {error}
        </p>
      ) : null}
      <button type="button" id="db-create" class="button button--accent" aria-busy={pending} onClick={() => {
          if (!pending) void create();
        }}>
        {pending ? "Creating…" : "Create database"}
      </button>
    </section>
  );
}

/** A PostgreSQL role's credentials, from the answer that made or rotated them: never shown again. */
function CredentialsPanel({ credentials, onDismiss }: { credentials: Credentials; onDismiss: () => void }) {
  const [copied, setCopied] = useState<string | null>(null);
  const [copyError, setCopyError] = useState<string | null>(null);
  // Focus on the password, selected, the moment it is shown: it is what is copied first.
  useEffect(() => {
    const password = document.getElementById("db-password");
    if (password instanceof HTMLInputElement) {
      password.focus();
      password.select();
    }
  }, [credentials.password]);

  const copy = async (what: string, text: string) => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(what);
      setCopyError(null);
    } catch {
      setCopyError("Could not copy: select the text and copy it yourself.");
    }
  };
  const field = (id: string, label: string, value: string) => (
    <div class="copy-field">
      <label for={id}>{label}</label>
      <input id={id} readOnly value={value} onFocus={(e) => e.currentTarget.select()} />
      <button type="button" class="button button--small" onClick={() => void copy(label, value)}>
        {copied === label ? "Copied" : "Copy"}
        <span class="visually-hidden"> {label}</span>
      </button>
    </div>
  );

  return (
    <section class="notice stack db-credentials" aria-labelledby="db-credentials-heading">
      <h2 id="db-credentials-heading">Credentials of {credentials.database}</h2>
      <p role="status">
        <strong>Copy them now: they are shown only this once.</strong> Your apps get them by themselves, as <code>DATABASE_URL</code>: keep them, somewhere safe,
        only to connect some other way. Lost them? Rotate the password for a new one.
      </p>
      {field("db-username", "Username", credentials.username)}
      {field("db-password", "Password", credentials.password)}
      {field("db-url", "DATABASE_URL", credentials.app_url)}
      {copyError !== null ? (
        <p role="alert" class="alert">
          {copyError}
        </p>
      ) : null}
      <div>
        <button type="button" class="button button--small" onClick={onDismiss}>
          Done: I have them
        </button>
      </div>
    </section>
  );
}

function Overview({ database: db, onRotated }: { database: DatabaseView; onRotated: (rotated: DatabaseCreated) => void }) {
  const postgres = db.engine === "postgres";
  return (
    <section class="panel" aria-labelledby="db-heading">
      <h2 id="db-heading" tabIndex={-1}>
        Your database
      </h2>
      <dl class="facts-grid db-facts">
        <div>
          <dt>Engine</dt>
          <dd>{engineLabels[db.engine] ?? db.engine}</dd>
        </div>
        <div>
          <dt>Name</dt>
          <dd>
            <code>{db.name}</code>
          </dd>
        </div>
        <div>
          <dt>Your apps get</dt>
          <dd>
            <code>DATABASE_URL={db.app_url}</code>
            {db.engine === "sqlite" ? (
              <>
                <br />
                <code>DATABASE_PATH={SQLITE_PATH}</code>
              </>
            ) : null}
          </dd>
        </div>
        {typeof db.size_bytes === "number" ? (
          <div>
            <dt>Size</dt>
            <dd>{formatBytes(db.size_bytes)}</dd>
          </div>
        ) : null}
        <div>
          <dt>Created</dt>
          <dd>
            <time dateTime={db.created_at}>{formatWhen(db.created_at)}</time>
          </dd>
        </div>
        {postgres ? (
          <div>
            <dt>Password set</dt>
            <dd>
              <time dateTime={db.rotated_at ?? db.created_at}>{formatWhen(db.rotated_at ?? db.created_at)}</time>
            </dd>
          </div>
        ) : null}
      </dl>
      {postgres ? (
        <Rotate onRotated={onRotated} />
      ) : (
        <p class="hint">A SQLite database is a file your apps open: it has no user or password to rotate, and only your apps and this page reach it.</p>
      )}
    </section>
  );
}

/** Rotate, then "Yes, rotate" or Cancel: the old password stops working at once. */
function Rotate({ onRotated }: { onRotated: (rotated: DatabaseCreated) => void }) {
  const [confirming, setConfirming] = useState(false);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (confirming) focusSoon("db-rotate-cancel");
  }, [confirming]);

  const rotate = async () => {
    setPending(true);
    setError(null);
    try {
      onRotated(await database.rotate());
      setConfirming(false);
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setPending(false);
    }
  };

  return (
    <div class="db-rotate">
      {confirming ? (
        <div class="confirm" role="group" aria-label="Rotate the password?">
          <p>The old password stops working at once. Your running apps are deployed again with the new one, each switching over once it is healthy.</p>
          <button type="button" class="button button--small button--danger" onClick={() => void rotate()} disabled={pending}>
            {pending ? "Rotating…" : "Yes, rotate"}
          </button>
          <button
            type="button"
            id="db-rotate-cancel"
            class="button button--small"
            onClick={() => {
              setConfirming(false);
              focusSoon("db-rotate");
            }}
          >
            Cancel
          </button>
        </div>
      ) : (
        <button type="button" id="db-rotate" class="button button--small" onClick={() => setConfirming(true)}>
          Rotate password
        </button>
      )}
      {error !== null ? (
        <p role="alert" class="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

/** The tables (read again after each write), the console, and Delete naming what it loses. */
function Viewer({ onWrote, onDeleted }: { onWrote: () => void; onDeleted: () => void }) {
  const [reload, setReload] = useState(0);
  const [load] = useLoad((signal) => database.tables(signal), [reload], errorMessage);
  const tables: TableView[] | null = load.state === "ready" ? load.tables : null;

  return (
    <>
      <LoadStatus load={load} loading="Loading the tables…" onRetry={() => setReload((n) => n + 1)} />
      {tables ? <TableBrowser tables={tables} /> : null}
      <SqlConsole
        onWrote={() => {
          setReload((n) => n + 1);
          onWrote();
        }}
      />
      <section class="panel" aria-labelledby="db-delete-heading">
        <h2 id="db-delete-heading">Delete</h2>
        <p class="hint">Deletes the database and everything in it. You can create a new, empty one afterwards.</p>
        <ConfirmDelete
          name="the database"
          question={`Delete the database for good? ${whatIsLost(tables)} There is no undo, and your apps lose DATABASE_URL when they next start.`}
          onConfirm={async () => {
            await database.remove();
            onDeleted();
          }}
        />
      </section>
    </>
  );
}
