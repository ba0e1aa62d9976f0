// The agent jobs of a project: start one (kind, request), watch it live (its event stream,
// resumed after a dropped connection: jobEvents.ts), cancel it, see its result (JobResult),
// and the project's earlier jobs.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import type { FileApi } from "../api/files";
import { agentKinds, jobErrorLabels, jobs, type AgentInput, type AgentKind, type Job, type JobError, type JobState } from "../api/jobs";
import { LoadStatus, type Load } from "../components/LoadStatus";
import { formatWhen } from "../time";
import { applyJobEvent, followJob, isFinished, liveFromJob, type LiveJob } from "./jobEvents";
import { JobResult } from "./JobResult";

interface Props {
  projectId: string;
  /** The project's files, for the diffs of a change set against them. */
  files: FileApi;
  /** Changes whenever the files may have changed (an edit, an accepted change set). */
  filesVersion: string;
  /** A change set was accepted or applied: the tree re-reads. */
  onFilesChanged: () => void;
}

const kindLabel = (kind: string) => agentKinds.find((k) => k.value === kind)?.label ?? kind;

const stateLabels: Record<string, string> = {
  queued: "queued",
  running: "running",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
};

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function JobPanel({ projectId, files, filesVersion, onFilesChanged }: Props) {
  const [list, setList] = useState<Load<{ jobs: Job[] }>>({ state: "loading" });
  const [listKey, setListKey] = useState(0);
  const [selected, setSelected] = useState<Job | null>(null);
  const picked = useRef(false);

  useEffect(() => {
    const controller = new AbortController();
    jobs.list({ project: projectId, limit: 50 }, controller.signal).then(
      ({ jobs: found }) => {
        setList({ state: "ready", jobs: found });
        // Coming back to the page: follow the newest job still going on.
        if (!picked.current) {
          picked.current = true;
          const going = found.find((j) => !isFinished(j.state));
          if (going) setSelected(going);
        }
      },
      (error: unknown) => {
        if (!controller.signal.aborted) setList({ state: "error", message: messageOf(error) });
      },
    );
    return () => controller.abort();
  }, [projectId, listKey]);

  const refreshList = () => setListKey((n) => n + 1);

  return (
    <aside class="jobs" aria-labelledby="jobs-heading">
      <h2 id="jobs-heading" class="jobs__title">
        Agent jobs
      </h2>
      <StartJob
        projectId={projectId}
        onStarted={(job) => {
          picked.current = true;
          setSelected(job);
          setList((l) => (l.state === "ready" ? { state: "ready", jobs: [job, ...l.jobs] } : l));
        }}
      />
      {selected ? (
        <JobView
          key={selected.id}
          initial={selected}
          files={files}
          filesVersion={filesVersion}
          onFilesChanged={onFilesChanged}
          onFinished={refreshList}
          onState={(id, state) =>
            setList((l) =>
              l.state === "ready" && l.jobs.some((j) => j.id === id && j.state !== state)
                ? { state: "ready", jobs: l.jobs.map((j) => (j.id === id ? { ...j, state } : j)) }
                : l,
            )
          }
        />
      ) : null}
      <section class="jobs__history" aria-labelledby="job-history-heading">
        <h3 id="job-history-heading">Earlier jobs</h3>
        <LoadStatus load={list} loading="Loading jobs…" onRetry={refreshList} />
        {list.state === "ready" &&
          (list.jobs.length === 0 ? (
            <p class="ws-muted">No jobs yet.</p>
          ) : (
            <table class="table jobs__table" aria-label="Jobs of this project">
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col">State</th>
                  <th scope="col">Started</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.jobs.map((j) => {
                  const current = selected?.id === j.id;
                  return (
                    <tr key={j.id} class={current ? "is-current" : undefined} aria-current={current ? "true" : undefined}>
                      <th scope="row">{kindLabel(j.kind)}</th>
                      <td>
                        <span class={`job-state job-state--${j.state}`}>{stateLabels[j.state] ?? j.state}</span>
                        {j.error ? <code class="jobs__code">{j.error.code}</code> : null}
                      </td>
                      <td>
                        <time dateTime={j.created_at}>{formatWhen(j.created_at)}</time>
                      </td>
                      <td>
                        <button type="button" class="ws-button" onClick={() => setSelected(j)} disabled={current}>
                          {current ? "Shown" : "Show"}
                          <span class="visually-hidden">
                            {" "}
                            {kindLabel(j.kind)} job of {formatWhen(j.created_at)}
                          </span>
                        </button>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          ))}
      </section>
    </aside>
  );
}

function StartJob({ projectId, onStarted }: { projectId: string; onStarted: (job: Job) => void }) {
  const [kind, setKind] = useState<AgentKind>("code");
  const [prompt, setPrompt] = useState("");
  const [apply, setApply] = useState(false);
  const [command, setCommand] = useState("");
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const does = agentKinds.find((k) => k.value === kind)?.does ?? "";

  const submit = async (event: Event) => {
    event.preventDefault();
    if (kind !== "qa" && prompt.trim() === "") {
      setError("Say what the job is to do.");
      return;
    }
    const input: AgentInput = { prompt: prompt.trim() };
    if (kind === "code" && apply) input.apply = true;
    if (kind === "qa" && command.trim() !== "") input.command = command.trim().split(/\s+/);
    setPending(true);
    setError(null);
    try {
      onStarted(await jobs.start(projectId, kind, input));
      setPrompt("");
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setPending(false);
    }
  };

  return (
    <form class="jobs__start" onSubmit={submit} aria-label="Start a job">
      <div class="jobs__field">
        <label for="job-kind">Kind</label>
        <select id="job-kind" value={kind} onChange={(e) => setKind(e.currentTarget.value as AgentKind)} aria-describedby="job-kind-does">
          {agentKinds.map((k) => (
            <option key={k.value} value={k.value}>
              {k.label}
            </option>
          ))}
        </select>
        <span id="job-kind-does" class="ws-muted">
          {does}
        </span>
      </div>
      <div class="jobs__field">
        <label for="job-prompt">
          Request{kind === "qa" ? <span class="optional"> (optional)</span> : null}
        </label>
        <textarea
          id="job-prompt"
          rows={3}
          maxLength={20_000}
          value={prompt}
          placeholder={kind === "code" ? "e.g. Add a function that reverses a string, with a test" : ""}
          onInput={(e) => setPrompt(e.currentTarget.value)}
        />
      </div>
      {kind === "code" ? (
        <label class="jobs__check">
          <input type="checkbox" checked={apply} onChange={(e) => setApply(e.currentTarget.checked)} />
          Apply the changes at once, without review
        </label>
      ) : null}
      {kind === "qa" ? (
        <div class="jobs__field">
          <label for="job-command">
            Test command <span class="optional">(optional)</span>
          </label>
          <input
            id="job-command"
            class="mono"
            value={command}
            placeholder="python3 -m unittest discover -v"
            onInput={(e) => setCommand(e.currentTarget.value)}
            aria-describedby="job-command-hint"
          />
          <span id="job-command-hint" class="ws-muted">
            Split at spaces, run without a shell. Empty: the project's Python tests.
          </span>
        </div>
      ) : null}
      {error !== null ? (
        <p role="alert" class="ws-alert">
          {error}
        </p>
      ) : null}
      <div>
        <button type="submit" class="ws-button ws-button--primary" disabled={pending}>
          {pending ? "Starting…" : "Start job"}
        </button>
      </div>
    </form>
  );
}

interface ViewProps {
  initial: Job;
  files: FileApi;
  filesVersion: string;
  onFilesChanged: () => void;
  onFinished: () => void;
  /** The job's state changed (the list shows it too). */
  onState: (id: string, state: JobState) => void;
}

/** One job, followed live until it ends. */
function JobView({ initial, files, filesVersion, onFilesChanged, onFinished, onState }: ViewProps) {
  const id = initial.id;
  const [live, setLive] = useState<LiveJob>(() => liveFromJob(initial));
  const [connection, setConnection] = useState<{ retrying: string } | { failed: string } | null>(null);
  const [follow, setFollow] = useState(0);
  const [cancelling, setCancelling] = useState(false);
  const [cancelError, setCancelError] = useState<string | null>(null);
  const lastSeq = useRef(0);
  const callbacks = useRef({ onFinished, onFilesChanged, onState });
  callbacks.current = { onFinished, onFilesChanged, onState };

  useEffect(() => callbacks.current.onState(id, live.state), [id, live.state]);

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    setConnection(null);
    followJob({
      open: (after, s) => jobs.events(id, after, s),
      after: lastSeq.current,
      signal,
      onEvent: (e) => {
        lastSeq.current = e.seq;
        setConnection(null);
        setLive((l) => applyJobEvent(l, e));
      },
      onRetry: (_failure, ms) => setConnection({ retrying: `Connection lost: reconnecting in ${Math.max(1, Math.round(ms / 1000))} s…` }),
    })
      // The job as the server has it at the end (its result and error in full).
      .then(() => jobs.get(id, signal))
      .then(
        (job) => {
          setLive((l) => ({
            ...l,
            state: job.state,
            percent: job.progress,
            message: job.progress_message ?? l.message,
            result: job.result ?? l.result,
            error: job.error ?? l.error,
            cancelRequested: job.cancel_requested,
          }));
          callbacks.current.onFinished();
          const result = job.result as { kind?: string; applied?: boolean } | null;
          if (job.state === "completed" && result?.kind === "code" && result.applied) callbacks.current.onFilesChanged();
        },
        (error: unknown) => {
          if (!signal.aborted) setConnection({ failed: messageOf(error) });
        },
      );
    return () => controller.abort();
  }, [id, follow]);

  const cancel = async () => {
    setCancelling(true);
    setCancelError(null);
    try {
      const job = await jobs.cancel(id);
      setLive((l) => ({ ...l, cancelRequested: l.cancelRequested || job.cancel_requested }));
    } catch (caught) {
      // It ended meanwhile: its stream says how.
      if (!(caught instanceof ApiError && caught.code === "job_finished")) setCancelError(messageOf(caught));
    } finally {
      setCancelling(false);
    }
  };

  const finished = isFinished(live.state);
  const percent = live.state === "completed" ? 100 : live.percent;
  const kind = kindLabel(initial.kind);
  const headingId = `job-${id}`;

  return (
    <section class="job" aria-labelledby={headingId}>
      <div class="job__head">
        <h3 id={headingId} class="job__title">
          {kind} job
        </h3>
        <time class="ws-muted" dateTime={initial.created_at}>
          {formatWhen(initial.created_at)}
        </time>
      </div>
      <p class="job__state" role="status">
        <span class={`job-state job-state--${live.state}`}>
          {kind} job {stateLabels[live.state] ?? live.state}
          {live.cancelRequested && !finished ? " (cancelling)" : ""}
        </span>
      </p>
      <div
        class="job__progress"
        role="progressbar"
        aria-label={`Progress of the ${kind.toLowerCase()} job`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        aria-valuetext={`${percent}%${live.message ? `: ${live.message}` : ""}`}
      >
        <div class={`job__bar job__bar--${live.state}`} style={{ width: `${percent}%` }} />
      </div>
      <p class="job__message ws-muted">
        {percent}%{live.message && !finished ? ` · ${live.message}` : ""}
        {live.attempt !== null && initial.max_attempts > 1 ? ` · attempt ${live.attempt} of ${initial.max_attempts}` : ""}
      </p>
      {connection && "retrying" in connection ? <p class="ws-muted">{connection.retrying}</p> : null}
      {connection && "failed" in connection ? (
        <div class="ws-alert" role="alert">
          <span>Could not follow the job: {connection.failed}</span>
          <button type="button" class="ws-button" onClick={() => setFollow((n) => n + 1)}>
            Try again
          </button>
        </div>
      ) : null}
      {!finished ? (
        <div class="job__actions">
          <button type="button" class="ws-button ws-button--danger" onClick={() => void cancel()} disabled={cancelling || live.cancelRequested}>
            {live.cancelRequested ? "Cancelling…" : "Cancel job"}
          </button>
        </div>
      ) : null}
      {cancelError !== null ? (
        <p class="ws-alert" role="alert">
          {cancelError}
        </p>
      ) : null}
      {live.error && live.state !== "completed" && live.state !== "cancelled" ? (
        <JobErrorNote error={live.error} retrying={live.state === "queued" ? live.retryAt : null} final={live.state === "failed"} />
      ) : null}
      {live.log.length > 0 ? (
        <details class="job__log" open={!finished}>
          <summary>Log ({live.log.length} lines)</summary>
          <pre tabIndex={0} aria-label="Job log">
            {live.log.join("\n")}
          </pre>
        </details>
      ) : null}
      {live.state === "completed" && live.result ? (
        <JobResult jobId={id} result={live.result} files={files} filesVersion={filesVersion} onFilesChanged={onFilesChanged} />
      ) : null}
    </section>
  );
}

function JobErrorNote({ error, retrying, final }: { error: JobError; retrying: string | null; final: boolean }) {
  const label = jobErrorLabels[error.code];
  return (
    <div class={final ? "ws-alert job__error" : "job__error job__error--retry"} role={final ? "alert" : undefined}>
      <p>
        <strong>{final ? "Failed" : "An attempt failed"}:</strong> {label ? `${label} ` : ""}(<code>{error.code}</code>)
        {retrying ? ` — trying again at ${formatWhen(retrying)}` : ""}
      </p>
      {error.message ? <p class="job__error-message">{error.message}</p> : null}
    </div>
  );
}
