// An app at /apps/<id>: where it is served and how it is doing, Stop / Start, public and pinned,
// deploying (the stages live), its versions with Rollback, its variables and secrets, its log
// live, what it gets of the owner's database, and deleting it. A lazy chunk with the apps list
// (app.tsx).
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { apps, stateLabels, type App, type AppStatus, type Deployment, type Version } from "../api/apps";
import { ConfirmDelete } from "../components/ConfirmDelete";
import { DatabasePanel } from "../apps/DatabasePanel";
import { DeployPanel } from "../apps/DeployPanel";
import { LogPanel } from "../apps/LogPanel";
import { VariablesEditor } from "../apps/VariablesEditor";
import { LoadStatus, useLoad } from "../components/LoadStatus";
import { Link, navigate } from "../router";
import { formatWhen } from "../time";
import { usePageTitle } from "../usePageTitle";
import { errorMessage } from "./CatalogPage";
import "./pages.css";
import "./apps.css";

interface Data {
  app: App;
  status: AppStatus;
  versions: Version[];
}

async function fetchAll(id: string, signal?: AbortSignal): Promise<Data> {
  const [app, status, { versions }] = await Promise.all([apps.get(id, signal), apps.status(id, signal), apps.versions(id, signal)]);
  return { app, status, versions };
}

/** A failed load or refresh in words; a 404 is someone else's app or one deleted. */
function whyNot(error: unknown): string {
  if (error instanceof ApiError && error.status === 404) return "There is no such app: it was deleted, or it is not yours.";
  return errorMessage(error);
}

export function AppPage({ id }: { id: string }) {
  const [reload, setReload] = useState(0);
  const [notice, setNotice] = useState("");
  const [load, setLoad] = useLoad((signal) => fetchAll(id, signal), [id, reload], whyNot);
  const refreshTimer = useRef<number | undefined>(undefined);
  usePageTitle(load.state === "ready" ? load.app.name : "App");

  const patch = useCallback(
    (part: Partial<Data>) => setLoad((current) => (current.state === "ready" ? { ...current, ...part } : current)),
    [setLoad],
  );
  const refresh = useCallback(() => {
    fetchAll(id).then(patch, (error: unknown) => setNotice(`Could not refresh: ${whyNot(error)}`));
  }, [id, patch]);
  // Log lines say the app did something (started, answered, exited): its state and last
  // request are read again, at most twice a second however fast it logs.
  const refreshState = useCallback(() => {
    if (refreshTimer.current !== undefined) return;
    refreshTimer.current = window.setTimeout(() => {
      refreshTimer.current = undefined;
      Promise.all([apps.get(id), apps.status(id)]).then(
        ([app, status]) => patch({ app, status }),
        (error: unknown) => setNotice(`Could not refresh: ${whyNot(error)}`),
      );
    }, 500);
  }, [id, patch]);
  useEffect(() => () => clearTimeout(refreshTimer.current), []);

  if (load.state !== "ready") {
    return (
      <section class="page" aria-labelledby="app-heading">
        <h1 id="app-heading">App</h1>
        <LoadStatus load={load} loading="Loading the app…" onRetry={() => setReload((n) => n + 1)} />
        <p>
          <Link href="/apps">Back to your apps</Link>
        </p>
      </section>
    );
  }
  const { app, status, versions } = load;

  const onDeployed = (deployment: Deployment) => {
    patch({ versions: [deployment.version, ...versions.filter((v) => v.version !== deployment.version.version)] });
    setNotice(`Deploying version ${deployment.version.version}.`);
  };

  return (
    <section class="page app-page" aria-labelledby="app-heading">
      <Link href="/apps" class="app-page__back">
        ← Apps
      </Link>
      <h1 id="app-heading">{app.name}</h1>
      <dl class="facts-grid app-facts">
        <div>
          <dt>Address</dt>
          <dd class="app-url">
            <a href={app.url} target="_blank" rel="noopener">
              {app.url}
              <span class="visually-hidden"> (opens in a new tab)</span>
            </a>
          </dd>
        </div>
        <div>
          <dt id="app-state-label">State</dt>
          <dd>
            <span role="status" aria-labelledby="app-state-label app-state" id="app-state" class={`app-state app-state--${status.state}`}>
              {stateLabels[status.state] ?? status.state}
            </span>
            {status.restarts > 0 ? <span class="hint"> · restarted {status.restarts}×</span> : null}
          </dd>
        </div>
        <div>
          <dt>Runtime</dt>
          <dd>
            {app.runtime}
            {app.runtime !== "static" ? (
              <>
                {" "}
                <code>{app.entry}</code>
              </>
            ) : null}
          </dd>
        </div>
        <div>
          <dt>Live version</dt>
          <dd>{app.live_version ?? "none"}</dd>
        </div>
        <div>
          <dt>Last request</dt>
          <dd>{app.last_request_at ? <time dateTime={app.last_request_at}>{formatWhen(app.last_request_at)}</time> : "none yet"}</dd>
        </div>
      </dl>
      <Controls
        app={app}
        onChanged={(changed, said) => {
          patch({ app: changed });
          setNotice(said);
          refresh();
        }}
        onStopStart={(said) => {
          setNotice(said);
          refresh();
        }}
      />
      <p class="status-line" role="status">
        {notice}
      </p>
      <div class="app-grid">
        <DeployPanel appId={app.id} versions={versions} onDeployed={onDeployed} onFinished={refresh} />
        <LogPanel appId={app.id} onLine={refreshState} />
        <Versions
          app={app}
          versions={versions}
          onRolledBack={(deployment) => {
            onDeployed(deployment);
            document.getElementById("deploy-heading")?.scrollIntoView({ block: "start" });
          }}
        />
        <VariablesEditor
          app={app}
          onSaved={(saved) => {
            patch({ app: saved });
            setNotice("Saved: it applies from the next deploy or start.");
          }}
        />
        <DatabasePanel />
        <section class="panel" aria-labelledby="delete-heading">
          <h2 id="delete-heading">Delete</h2>
          <p class="hint">Its versions and log go, and its address stops answering.</p>
          <ConfirmDelete
            name={app.name}
            question="Delete the app with all its versions?"
            onConfirm={async () => {
              await apps.remove(app.id);
              navigate("/apps");
            }}
          />
        </section>
      </div>
    </section>
  );
}

interface ControlsProps {
  app: App;
  onChanged: (app: App, said: string) => void;
  onStopStart: (said: string) => void;
}

/** Stop / Start and the public and pinned switches, each saved at once. */
function Controls({ app, onChanged, onStopStart }: ControlsProps) {
  const [pending, setPending] = useState<null | "run" | "public" | "pinned">(null);
  const [error, setError] = useState<string | null>(null);
  // A switch shows what was asked for while it is saved; a refusal puts it back.
  const [asked, setAsked] = useState<{ public?: boolean; pinned?: boolean }>({});
  const stopped = app.desired === "stopped";

  // Not disabled while saving, so focus stays on the control; a press meanwhile is ignored.
  const run = async (what: "run" | "public" | "pinned", action: () => Promise<void>) => {
    if (pending !== null) return;
    setPending(what);
    setError(null);
    try {
      await action();
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setPending(null);
    }
  };
  const update = async (what: "public" | "pinned", on: boolean, said: string) => {
    if (pending !== null) return;
    setAsked({ [what]: on });
    await run(what, async () => onChanged(await apps.update(app.id, { [what]: on }), said));
    setAsked({});
  };

  return (
    <div class="app-controls">
      <button
        type="button"
        class="button"
        aria-busy={pending === "run"}
        onClick={() =>
          void run("run", async () => {
            if (stopped) {
              await apps.start(app.id);
              onStopStart("Started: it runs again from its next request.");
            } else {
              await apps.stop(app.id);
              onStopStart("Stopped: its address says so until you start it.");
            }
          })
        }
      >
        {stopped ? "Start app" : "Stop app"}
      </button>
      <label class="check">
        <input
          type="checkbox"
          checked={asked.public ?? app.public}
          aria-describedby="app-public-hint"
          onChange={(e) => {
            const on = e.currentTarget.checked;
            void update("public", on, on ? "Public: anyone with the address may open it." : "Private: only you, signed in, may open it.");
          }}
        />
        Public
      </label>
      <span id="app-public-hint" class="hint">
        anyone with the address may open it
      </span>
      <label class="check">
        <input
          type="checkbox"
          checked={asked.pinned ?? app.pinned}
          aria-describedby="app-pinned-hint"
          onChange={(e) => {
            const on = e.currentTarget.checked;
            void update("pinned", on, on ? "Pinned: it is kept while idle." : "Not pinned: it may be deleted once idle for long.");
          }}
        />
        Pinned
      </label>
      <span id="app-pinned-hint" class="hint">
        not deleted when idle
      </span>
      {error !== null ? (
        <p role="alert" class="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

const versionStates: Record<string, string> = {
  pending: "deploying",
  live: "live",
  superseded: "earlier",
  failed: "failed",
  cancelled: "cancelled",
};

/** Where a version's files came from. */
function sourceOf(source: string): string {
  const [kind, rest] = source.split(/:(.*)/s, 2);
  if (kind === "request") return "files sent from the page";
  if (kind === "session") return "a session's workspace";
  if (kind === "project") return "a project";
  if (kind === "version") return `version ${rest} again (rollback)`;
  return source;
}

interface VersionsProps {
  app: App;
  versions: Version[];
  onRolledBack: (deployment: Deployment) => void;
}

function Versions({ app, versions, onRolledBack }: VersionsProps) {
  const [pending, setPending] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const deploying = versions.some((v) => v.state === "pending");

  const rollback = async (version: number) => {
    setPending(version);
    setError(null);
    try {
      onRolledBack(await apps.rollback(app.id, version));
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setPending(null);
    }
  };

  return (
    <section class="panel" aria-labelledby="versions-heading">
      <h2 id="versions-heading">Versions</h2>
      {versions.length === 0 ? (
        <p class="hint">None yet.</p>
      ) : (
        <div class="table-wrap">
          <table class="table" aria-label="Versions">
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">State</th>
                <th scope="col">From</th>
                <th scope="col">Files</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {versions.map((v) => (
                <tr key={v.version}>
                  <th scope="row">{v.version}</th>
                  <td>
                    <span class={`version-state version-state--${v.state}`}>{versionStates[v.state] ?? v.state}</span>
                    {v.error ? <code class="version-code">{v.error.code}</code> : null}
                  </td>
                  <td>{sourceOf(v.source)}</td>
                  <td>{v.files}</td>
                  <td>
                    <time dateTime={v.created_at}>{formatWhen(v.created_at)}</time>
                  </td>
                  <td>
                    {v.state === "superseded" ? (
                      <button type="button" class="button button--small" disabled={deploying || pending !== null} onClick={() => void rollback(v.version)}>
                        {pending === v.version ? "Rolling back…" : "Roll back"}
                        <span class="visually-hidden"> to version {v.version}</span>
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {error !== null ? (
        <p role="alert" class="alert">
          {error}
        </p>
      ) : null}
    </section>
  );
}
