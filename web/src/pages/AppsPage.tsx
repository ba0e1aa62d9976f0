// `/apps`: the user's apps (name, runtime, how each is doing, its address), creating one and
// deleting one after confirming. Each links to its page, `/apps/<id>` (deploys, versions, logs).
// A lazy chunk with that page (app.tsx).
import { useEffect, useState } from "preact/hooks";
import { appHref, appRules, apps, runtimes, stateLabels, type App, type AppRuntime } from "../api/apps";
import { ConfirmDelete } from "../components/ConfirmDelete";
import { LoadStatus, useLoad } from "../components/LoadStatus";
import { Link, navigate } from "../router";
import { usePageTitle } from "../usePageTitle";
import { errorMessage } from "./CatalogPage";
import "./pages.css";
import "./apps.css";

const namePattern = new RegExp(`^(?:${appRules.name.pattern})$`);

export function AppsPage() {
  usePageTitle("Apps");
  const [reload, setReload] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const [load, setLoad] = useLoad((signal) => apps.list(signal), [reload], errorMessage);

  return (
    <section class="page" aria-labelledby="apps-heading">
      <h1 id="apps-heading">Apps</h1>
      <p class="page__lead">
        Web apps you deployed: sandpit serves each at its own address. Deploy one from the playground, a lab or a project.
      </p>
      <CreateApp onCreated={(app) => navigate(appHref(app.id))} />
      <section class="panel" aria-labelledby="app-list-heading">
        <h2 id="app-list-heading">Your apps</h2>
        <p class="status-line" role="status">
          {notice ?? ""}
        </p>
        <LoadStatus load={load} loading="Loading apps…" onRetry={() => setReload((n) => n + 1)} />
        {load.state === "ready" &&
          (load.apps.length === 0 ? (
            <p>No apps yet: create one above, or use “Deploy as app” in the playground.</p>
          ) : (
            <div class="table-wrap">
              <table class="table" aria-label="Your apps">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Runtime</th>
                    <th scope="col">State</th>
                    <th scope="col">Address</th>
                    <th scope="col">
                      <span class="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {load.apps.map((a) => (
                    <AppRow
                      key={a.id}
                      app={a}
                      onDeleted={() => {
                        setNotice(`App “${a.name}” deleted.`);
                        setLoad((current) => (current.state === "ready" ? { state: "ready", apps: current.apps.filter((b) => b.id !== a.id) } : current));
                      }}
                    />
                  ))}
                </tbody>
              </table>
            </div>
          ))}
      </section>
    </section>
  );
}

function CreateApp({ onCreated }: { onCreated: (app: App) => void }) {
  const [name, setName] = useState("");
  const [runtime, setRuntime] = useState<AppRuntime>("python");
  const [entry, setEntry] = useState("");
  const [isPublic, setPublic] = useState(true);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const defaultEntry = runtimes.find((r) => r.value === runtime)?.entry ?? "";

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!namePattern.test(name.trim())) {
      setError(`The name: ${appRules.name.hint}`);
      return;
    }
    setPending(true);
    setError(null);
    try {
      const body = { name: name.trim(), runtime, public: isPublic, ...(entry.trim() && runtime !== "static" ? { entry: entry.trim() } : {}) };
      onCreated(await apps.create(body));
    } catch (caught) {
      setError(errorMessage(caught));
      setPending(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="create-app-heading">
      <h2 id="create-app-heading">New app</h2>
      <form class="form" onSubmit={submit}>
        <div class="app-form">
          <div class="field">
            <label for="app-name">Name</label>
            <input
              id="app-name"
              maxLength={appRules.name.maxLength}
              autocomplete="off"
              spellcheck={false}
              placeholder="e.g. hello"
              value={name}
              aria-describedby="app-name-hint"
              onInput={(e) => setName(e.currentTarget.value)}
            />
            <p id="app-name-hint" class="hint">
              {appRules.name.hint}
            </p>
          </div>
          <div class="field">
            <label for="app-runtime">Runtime</label>
            <select id="app-runtime" value={runtime} onChange={(e) => setRuntime(e.currentTarget.value as AppRuntime)}>
              {runtimes.map((r) => (
                <option key={r.value} value={r.value}>
                  {r.label}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="app-entry">
              Entry <span class="optional">(optional)</span>
            </label>
            <input
              id="app-entry"
              class="mono"
              autocomplete="off"
              spellcheck={false}
              placeholder={defaultEntry}
              value={runtime === "static" ? "" : entry}
              disabled={runtime === "static"}
              aria-describedby="app-entry-hint"
              onInput={(e) => setEntry(e.currentTarget.value)}
            />
            <p id="app-entry-hint" class="hint">
              {runtime === "python"
                ? "module:attribute, default main:app (the variable app in main.py)."
                : runtime === "node"
                  ? "The file to run, default server.js; it listens on $PORT."
                  : "A static site is served from its index.html."}
            </p>
          </div>
        </div>
        <label class="check">
          <input type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.currentTarget.checked)} />
          Public: anyone with the address may open it (otherwise only you, signed in)
        </label>
        {error !== null && (
          <p role="alert" class="alert">
            {error}
          </p>
        )}
        <div>
          <button type="submit" class="button button--accent" disabled={pending}>
            {pending ? "Creating…" : "Create app"}
          </button>
        </div>
      </form>
    </section>
  );
}

function AppRow({ app, onDeleted }: { app: App; onDeleted: () => void }) {
  const [state, setState] = useState<string | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    apps.status(app.id, controller.signal).then(
      (status) => setState(status.state),
      () => {
        if (!controller.signal.aborted) setState("unknown");
      },
    );
    return () => controller.abort();
  }, [app.id]);

  return (
    <tr>
      <th scope="row">
        <Link href={appHref(app.id)}>{app.name}</Link>
      </th>
      <td>{app.runtime}</td>
      <td>{state === null ? <span class="hint">…</span> : <span class={`app-state app-state--${state}`}>{stateLabels[state] ?? state}</span>}</td>
      <td class="app-url">
        <a href={app.url} target="_blank" rel="noopener">
          {app.url}
          <span class="visually-hidden"> (opens in a new tab)</span>
        </a>
      </td>
      <td>
        <ConfirmDelete
          name={app.name}
          question="Delete it with all its versions? Its address stops answering."
          onConfirm={async () => {
            await apps.remove(app.id);
            onDeleted();
          }}
        />
      </td>
    </tr>
  );
}
