// An app's deploys: deploying from one of the user's live sessions or projects, and the newest
// version's deploy as a stepper (validating → installing → starting → healthy), followed live
// on its job's event stream the way the agent jobs panel follows a job (jobEvents.ts). A failed
// deploy shows the failed stage, the message, `file:line` and the app's last log lines.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { apps, type Deployment, type DeploySource, type Version } from "../api/apps";
import { jobs, type JobError } from "../api/jobs";
import { projects } from "../api/projects";
import { sessions } from "../api/sessions";
import { LoadStatus, useLoad } from "../components/LoadStatus";
import { errorMessage } from "../pages/CatalogPage";
import { followJob, MAX_LOG_LINES } from "../projects/jobEvents";
import { formatWhen } from "../time";
import { progressOfVersion, stageOfJobError, stepsOf, type DeployProgress, type StepState } from "./deploySteps";

interface Props {
  appId: string;
  /** The app's versions, newest first. */
  versions: Version[];
  onDeployed: (deployment: Deployment) => void;
  /** The newest deploy ended (or its stream did): what the server has changed. */
  onFinished: () => void;
}

export function DeployPanel({ appId, versions, onDeployed, onFinished }: Props) {
  const newest = versions[0];
  return (
    <section class="panel panel--wide" aria-labelledby="deploy-heading">
      <h2 id="deploy-heading">Deploy</h2>
      <DeployForm appId={appId} onDeployed={onDeployed} />
      {newest ? (
        <DeployView key={newest.version} version={newest} onFinished={onFinished} />
      ) : (
        <p class="hint">Not deployed yet: pick what to deploy above.</p>
      )}
    </section>
  );
}

function DeployForm({ appId, onDeployed }: { appId: string; onDeployed: (deployment: Deployment) => void }) {
  const [reload, setReload] = useState(0);
  const [load] = useLoad(
    async (signal) => {
      const [s, p] = await Promise.all([sessions.list(signal), projects.list(signal)]);
      return { sessions: s.sessions.filter((x) => x.status !== "ended"), projects: p.projects };
    },
    [reload],
    errorMessage,
  );
  const [choice, setChoice] = useState("");
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const first = load.state === "ready" ? (load.sessions[0] ? `session:${load.sessions[0].id}` : load.projects[0] ? `project:${load.projects[0].id}` : "") : "";
  const picked = choice || first;

  const submit = async (event: Event) => {
    event.preventDefault();
    const [kind, id] = picked.split(":", 2) as [string, string];
    if (!id) return;
    const source: DeploySource = kind === "session" ? { session_id: id } : { project_id: id };
    setPending(true);
    setError(null);
    try {
      onDeployed(await apps.deploy(appId, source));
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setPending(false);
    }
  };

  if (load.state !== "ready") return <LoadStatus load={load} loading="Loading your sessions and projects…" onRetry={() => setReload((n) => n + 1)} />;
  if (load.sessions.length === 0 && load.projects.length === 0) {
    return <p class="hint">Nothing to deploy from: start a lab or create a project, or use “Deploy as app” in the playground.</p>;
  }
  return (
    <form class="deploy-form" onSubmit={submit}>
      <div class="field">
        <label for="deploy-source">Deploy from</label>
        <select id="deploy-source" value={picked} onChange={(e) => setChoice(e.currentTarget.value)}>
          {load.sessions.length > 0 ? (
            <optgroup label="Live sessions">
              {load.sessions.map((s) => (
                <option key={s.id} value={`session:${s.id}`}>
                  {s.lab ? `Lab ${s.lab}` : `Sandbox (${s.environment})`}, started {formatWhen(s.created_at)}
                </option>
              ))}
            </optgroup>
          ) : null}
          {load.projects.length > 0 ? (
            <optgroup label="Projects">
              {load.projects.map((p) => (
                <option key={p.id} value={`project:${p.id}`}>
                  Project {p.name}
                </option>
              ))}
            </optgroup>
          ) : null}
        </select>
      </div>
      <button type="submit" class="button button--accent" disabled={pending}>
        {pending ? "Deploying…" : "Deploy"}
      </button>
      {error !== null ? (
        <p role="alert" class="alert deploy-form__error">
          {error}
        </p>
      ) : null}
    </form>
  );
}

const stepWords: Record<StepState, string> = {
  done: "done",
  active: "in progress",
  failed: "failed",
  cancelled: "cancelled",
  pending: "waiting",
};

const capitalised = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** One version's deploy, followed live until it ends. */
function DeployView({ version, onFinished }: { version: Version; onFinished: () => void }) {
  const jobId = version.job_id ?? null;
  // With a job to follow, its events (replayed from the first) say how far it got.
  const [progress, setProgress] = useState<DeployProgress>(() => (jobId ? { state: "queued", stage: null } : progressOfVersion(version)));
  const [log, setLog] = useState<string[]>([]);
  const [jobError, setJobError] = useState<JobError | null>(null);
  const [connection, setConnection] = useState<{ retrying: string } | { failed: string } | null>(null);
  const [follow, setFollow] = useState(0);
  const lastSeq = useRef(0);
  const finished = useRef(onFinished);
  finished.current = onFinished;
  const versionRef = useRef(version);
  versionRef.current = version;

  useEffect(() => {
    if (!jobId) return;
    const controller = new AbortController();
    const { signal } = controller;
    setConnection(null);
    followJob({
      open: (after, s) => jobs.events(jobId, after, s),
      after: lastSeq.current,
      signal,
      onEvent: (e) => {
        lastSeq.current = e.seq;
        setConnection(null);
        if (e.type === "progress") setProgress((p) => ({ ...p, stage: e.message ?? p.stage }));
        else if (e.type === "state") {
          setProgress((p) => ({ ...p, state: e.state }));
          if (e.error) setJobError(e.error);
        } else if (e.type === "log") setLog((l) => [...l, e.line].slice(-MAX_LOG_LINES));
      },
      onRetry: (_failure, ms) => setConnection({ retrying: `Connection lost: reconnecting in ${Math.max(1, Math.round(ms / 1000))} s…` }),
    }).then(
      () => finished.current(),
      (error: unknown) => {
        if (signal.aborted) return;
        // The job is no longer kept: the version says how its deploy ended.
        if (error instanceof ApiError && error.status === 404) setProgress(progressOfVersion(versionRef.current));
        else setConnection({ failed: errorMessage(error) });
      },
    );
    return () => controller.abort();
  }, [jobId, follow]);

  const error = version.error ?? (jobError ? { stage: stageOfJobError(jobError.message) ?? "", code: jobError.code, message: jobError.message } : null);
  const steps = stepsOf({ ...progress, failedAt: error?.stage ?? null });
  const at = steps.find((s) => s.current)?.stage;
  const summary =
    progress.state === "completed"
      ? `Version ${version.version} deployed: healthy.`
      : progress.state === "failed"
        ? `Version ${version.version} failed${at ? ` at ${at}` : ""}.`
        : progress.state === "cancelled"
          ? `Version ${version.version}'s deploy was cancelled.`
          : at
            ? `Version ${version.version}: ${at}…`
            : `Version ${version.version}: waiting to deploy…`;
  const ended = progress.state === "completed" || progress.state === "failed" || progress.state === "cancelled";

  return (
    <section class="deploy" aria-labelledby="deploy-view-heading">
      <h3 id="deploy-view-heading" class="deploy__title">
        Version {version.version}{" "}
        <time class="hint" dateTime={version.created_at}>
          {formatWhen(version.created_at)}
        </time>
      </h3>
      <p class="deploy__summary" role="status">
        {summary}
      </p>
      <ol class="stepper" aria-label={`Stages of version ${version.version}'s deploy`}>
        {steps.map((s) => (
          <li key={s.stage} class={`step step--${s.state}`} aria-current={s.current ? "step" : undefined}>
            <span class="step__mark" aria-hidden="true" />
            <span class="step__name">{capitalised(s.stage)}</span>
            <span class="step__state">{stepWords[s.state]}</span>
          </li>
        ))}
      </ol>
      {connection && "retrying" in connection ? <p class="hint">{connection.retrying}</p> : null}
      {connection && "failed" in connection ? (
        <div class="alert deploy__alert" role="alert">
          <span>Could not follow the deploy: {connection.failed}</span>
          <button type="button" class="button button--small" onClick={() => setFollow((n) => n + 1)}>
            Try again
          </button>
        </div>
      ) : null}
      {progress.state === "failed" && error ? (
        <div class="alert deploy__error" role="alert">
          <p>
            <strong>{error.stage ? `${capitalised(error.stage)} failed` : "The deploy failed"}</strong> (<code>{error.code}</code>)
            {error.file ? (
              <>
                {" "}
                in <code>{error.line ? `${error.file}:${error.line}` : error.file}</code>
              </>
            ) : null}
          </p>
          <p class="deploy__message">{error.message}</p>
          {error.logs && error.logs.length > 0 ? (
            <>
              <p class="deploy__logs-title">The app's last log lines:</p>
              <pre class="deploy__logs" tabIndex={0} aria-label="The app's last log lines">
                {error.logs.join("\n")}
              </pre>
            </>
          ) : null}
        </div>
      ) : null}
      {log.length > 0 ? (
        <details class="deploy__log" open={!ended}>
          <summary>
            Deploy log ({log.length} line{log.length === 1 ? "" : "s"})
          </summary>
          <pre tabIndex={0} aria-label="Deploy log">
            {log.join("\n")}
          </pre>
        </details>
      ) : null}
    </section>
  );
}
