// What a completed agent job answered, per kind: research findings, wireframe screens, a code
// job's change set (per-file line diffs against the files as they are now, and Accept), a qa
// report with its test run, a lesson. The model's texts are Markdown, sanitised (Markdown.tsx).
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../api";
import type { FileApi } from "../api/files";
import {
  jobs,
  type AgentResult,
  type Change,
  type CodeOutput,
  type PedagogyOutput,
  type QaOutput,
  type ResearchOutput,
  type TestRun,
  type WireframeOutput,
} from "../api/jobs";
import { hunks, lineDiff, type DiffLine } from "./lineDiff";
import { Markdown } from "./Markdown";

interface Props {
  jobId: string;
  result: unknown;
  files: FileApi;
  filesVersion: string;
  onFilesChanged: () => void;
}

const list = <T,>(value: T[] | null | undefined): T[] => (Array.isArray(value) ? value : []);

export function JobResult({ jobId, result, files, filesVersion, onFilesChanged }: Props) {
  const r = result as AgentResult;
  const output = (r && typeof r === "object" ? r.output : null) as unknown;
  let body;
  if (!output || typeof output !== "object") body = <p class="ws-muted">The job gave no answer to show.</p>;
  else if (r.kind === "research") body = <Research output={output as ResearchOutput} />;
  else if (r.kind === "wireframe") body = <Wireframe output={output as WireframeOutput} />;
  else if (r.kind === "code")
    body = (
      <ChangeSet
        jobId={jobId}
        output={output as CodeOutput}
        applied={r.applied === true}
        files={files}
        filesVersion={filesVersion}
        onFilesChanged={onFilesChanged}
      />
    );
  else if (r.kind === "qa") body = <Qa output={output as QaOutput} tests={r.tests} />;
  else if (r.kind === "pedagogy") body = <Pedagogy output={output as PedagogyOutput} />;
  else body = <pre class="job__raw">{JSON.stringify(output, null, 2)}</pre>;
  return (
    <section class="result" aria-label="Result">
      {body}
      {r.provider || r.model ? (
        <p class="ws-muted result__by">
          Answered by {r.model || "a model"}
          {r.provider ? ` (${r.provider})` : ""}.
        </p>
      ) : null}
    </section>
  );
}

function Research({ output }: { output: ResearchOutput }) {
  return (
    <>
      <h4>Summary</h4>
      <Markdown text={output.summary ?? ""} />
      {list(output.findings).length > 0 ? (
        <>
          <h4>Findings</h4>
          <ul class="result__items">
            {list(output.findings).map((f, i) => (
              <li key={i}>
                <h5>{f.title}</h5>
                <Markdown text={f.detail ?? ""} />
                {list(f.sources).length > 0 ? (
                  <p class="ws-muted">
                    Sources:{" "}
                    {list(f.sources).map((s, k) => (
                      <span key={k}>
                        {k > 0 ? ", " : ""}
                        {/^https?:\/\//i.test(s) ? (
                          <a href={s} target="_blank" rel="noopener noreferrer">
                            {s}
                          </a>
                        ) : (
                          s
                        )}
                      </span>
                    ))}
                  </p>
                ) : null}
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {list(output.open_questions).length > 0 ? (
        <>
          <h4>Open questions</h4>
          <ul>
            {list(output.open_questions).map((q, i) => (
              <li key={i}>{q}</li>
            ))}
          </ul>
        </>
      ) : null}
    </>
  );
}

function Wireframe({ output }: { output: WireframeOutput }) {
  return (
    <>
      <h4>Screens</h4>
      <div class="wire">
        {list(output.screens).map((screen, i) => (
          <section key={i} class="wire__screen" aria-label={`Screen: ${screen.name}`}>
            <h5>{screen.name}</h5>
            <p class="ws-muted">{screen.purpose}</p>
            <ul class="wire__elements">
              {list(screen.elements).map((el, k) => (
                <li key={k} class={`wire__el wire__el--${/^[a-z]+$/.test(el.kind) ? el.kind : "other"}`}>
                  <span class="wire__kind">{el.kind}</span> {el.label}
                  {el.notes ? <span class="wire__notes"> — {el.notes}</span> : null}
                </li>
              ))}
            </ul>
          </section>
        ))}
      </div>
      {list(output.flow).length > 0 ? (
        <>
          <h4>Flow</h4>
          <ol>
            {list(output.flow).map((step, i) => (
              <li key={i}>{step}</li>
            ))}
          </ol>
        </>
      ) : null}
    </>
  );
}

function Qa({ output, tests }: { output: QaOutput; tests: TestRun | undefined }) {
  const passed = output.verdict === "pass";
  return (
    <>
      <h4>
        Test report: <span class={`status-badge ${passed ? "status-badge--passed" : ""}`}>{passed ? "pass" : "fail"}</span>
      </h4>
      <Markdown text={output.summary ?? ""} />
      {list(output.failures).length > 0 ? (
        <>
          <h5>Failures</h5>
          <ul class="result__items" aria-label="Failures">
            {list(output.failures).map((f, i) => (
              <li key={i}>
                <p>
                  <code>{f.test}</code>
                </p>
                <Markdown text={f.problem ?? ""} />
                <p class="ws-muted">Suggestion:</p>
                <Markdown text={f.suggestion ?? ""} />
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {tests ? (
        <details class="result__run">
          <summary>
            The test run: <code>{list(tests.command).join(" ")}</code> — {tests.passed ? "passed" : "failed"} ({tests.status}
            {tests.exit_code !== null ? `, exit code ${tests.exit_code}` : ""}, {tests.wall_ms} ms)
          </summary>
          {tests.stdout ? (
            <>
              <p class="ws-muted">stdout</p>
              <pre tabIndex={0} aria-label="Test output (stdout)">
                {tests.stdout}
              </pre>
            </>
          ) : null}
          {tests.stderr ? (
            <>
              <p class="ws-muted">stderr</p>
              <pre tabIndex={0} aria-label="Test output (stderr)">
                {tests.stderr}
              </pre>
            </>
          ) : null}
        </details>
      ) : null}
    </>
  );
}

function Pedagogy({ output }: { output: PedagogyOutput }) {
  return (
    <>
      {list(output.objectives).length > 0 ? (
        <>
          <h4>Objectives</h4>
          <ul>
            {list(output.objectives).map((o, i) => (
              <li key={i}>{o}</li>
            ))}
          </ul>
        </>
      ) : null}
      <h4>Lesson</h4>
      <ol class="result__items">
        {list(output.steps).map((s, i) => (
          <li key={i}>
            <h5>{s.title}</h5>
            <Markdown text={s.explanation ?? ""} />
            {s.exercise ? (
              <div class="result__exercise">
                <p>
                  <strong>Exercise</strong>
                </p>
                <Markdown text={s.exercise} />
              </div>
            ) : null}
          </li>
        ))}
      </ol>
      {list(output.quiz).length > 0 ? (
        <>
          <h4>Quiz</h4>
          <ul class="result__items">
            {list(output.quiz).map((q, i) => (
              <li key={i}>
                <details>
                  <summary>{q.question}</summary>
                  <Markdown text={q.answer ?? ""} />
                </details>
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </>
  );
}

/** The files a change set touches as they are now: text and ETag, or null when absent. */
type Current = Map<string, { text: string; etag: string | null } | null>;

type Outcome = { kind: "accepted"; message: string } | { kind: "stale"; message: string } | { kind: "error"; message: string };

interface ChangeSetProps {
  jobId: string;
  output: CodeOutput;
  applied: boolean;
  files: FileApi;
  filesVersion: string;
  onFilesChanged: () => void;
}

function ChangeSet({ jobId, output, applied, files, filesVersion, onFilesChanged }: ChangeSetProps) {
  const changes = list(output.changes);
  const [current, setCurrent] = useState<Current | { error: string } | null>(null);
  const [accepting, setAccepting] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);

  useEffect(() => {
    let stop = false;
    Promise.all(
      changes.map((c) =>
        files.read(c.path).then(
          (content) => [c.path, content] as const,
          (error: unknown) => {
            if (error instanceof ApiError && error.status === 404) return [c.path, null] as const;
            throw error;
          },
        ),
      ),
    ).then(
      (read) => {
        if (!stop) setCurrent(new Map(read));
      },
      (error: unknown) => {
        if (!stop) setCurrent({ error: error instanceof Error ? error.message : String(error) });
      },
    );
    return () => {
      stop = true;
    };
    // The change set of a job never changes; the files do.
  }, [files, filesVersion, jobId]);

  const accept = async () => {
    setAccepting(true);
    setOutcome(null);
    try {
      const accepted = await jobs.accept(jobId);
      setOutcome({
        kind: "accepted",
        message: accepted.already
          ? "These changes were accepted before: nothing was written."
          : `Accepted: ${accepted.changed.length === 1 ? "1 file" : `${accepted.changed.length} files`} changed (${accepted.changed.join(", ")}).`,
      });
      onFilesChanged();
    } catch (caught) {
      if (caught instanceof ApiError && caught.code === "change_set_stale") setOutcome({ kind: "stale", message: caught.message });
      else setOutcome({ kind: "error", message: caught instanceof Error ? caught.message : String(caught) });
    } finally {
      setAccepting(false);
    }
  };

  const ready = current instanceof Map ? current : null;
  const staleFiles = ready ? changes.filter((c) => isStale(c, ready.get(c.path))).map((c) => c.path) : [];

  return (
    <>
      <h4>Proposed changes</h4>
      <Markdown text={output.summary ?? ""} />
      {applied ? <p class="result__applied">The job applied these changes itself.</p> : null}
      {current && "error" in current ? (
        <p class="ws-alert" role="alert">
          Could not read the project's files to compare: {current.error}
        </p>
      ) : null}
      {!ready && !(current && "error" in current) ? (
        <p class="ws-muted" aria-busy="true">
          Comparing with the project's files…
        </p>
      ) : null}
      {ready
        ? changes.map((change) => <FileDiff key={change.path} change={change} current={ready.get(change.path) ?? null} />)
        : null}
      {!applied ? (
        <div class="result__accept">
          {staleFiles.length > 0 && outcome?.kind !== "accepted" ? (
            <p class="ws-muted">
              Changed since the job read {staleFiles.length === 1 ? "it" : "them"}: {staleFiles.join(", ")}. Accepting will be refused;
              run the job again.
            </p>
          ) : null}
          <button type="button" class="ws-button ws-button--primary" onClick={() => void accept()} disabled={accepting}>
            {accepting ? "Accepting…" : "Accept changes"}
          </button>
        </div>
      ) : null}
      {outcome?.kind === "accepted" ? (
        <p class="result__accepted" role="status">
          {outcome.message}
        </p>
      ) : null}
      {outcome?.kind === "stale" ? (
        <div class="ws-alert" role="alert">
          <p>
            <strong>Not applied: the files changed since the job read them</strong> (<code>change_set_stale</code>). Nothing was
            written.
          </p>
          <p>{outcome.message}</p>
        </div>
      ) : null}
      {outcome?.kind === "error" ? (
        <p class="ws-alert" role="alert">
          {outcome.message}
        </p>
      ) : null}
    </>
  );
}

/**
 * Whether the file is no longer the version the change was made against (and is not what the
 * change makes it either: a change set accepted before is in place, not stale).
 */
function isStale(change: Change, now: { text: string; etag: string | null } | null | undefined): boolean {
  if (now === undefined) return false;
  const inPlace = change.action === "delete" ? now === null : now !== null && now.text === (change.content ?? "");
  if (inPlace) return false;
  if (!change.base_sha256) return now !== null;
  return now === null || (now.etag !== null && now.etag !== `"${change.base_sha256}"`);
}

const signs: Record<DiffLine["op"], string> = { same: " ", add: "+", del: "-" };
const spoken: Record<DiffLine["op"], string> = { same: "", add: "Added: ", del: "Removed: " };

function FileDiff({ change, current }: { change: Change; current: { text: string; etag: string | null } | null }) {
  const before = current?.text ?? "";
  const after = change.action === "write" ? (change.content ?? "") : "";
  const diff = lineDiff(before, after);
  const what = change.action === "delete" ? "delete" : current === null ? "new file" : "modify";
  const added = diff?.filter((l) => l.op === "add").length ?? 0;
  const removed = diff?.filter((l) => l.op === "del").length ?? 0;
  const parts = diff ? hunks(diff) : [];
  const stale = isStale(change, current);

  return (
    <section class="diff" aria-label={`Changes to ${change.path}`}>
      <h5 class="diff__head">
        <code>{change.path}</code> <span class={`diff__what diff__what--${what.replace(" ", "-")}`}>{what}</span>
        {diff ? (
          <span class="diff__counts">
            <span class="diff__added">+{added}</span> <span class="diff__removed">−{removed}</span>
          </span>
        ) : null}
        {stale ? <span class="diff__stale">changed since the job read it</span> : null}
      </h5>
      {diff === null ? (
        <>
          <p class="ws-muted">Too large to compare line by line; the new file:</p>
          <pre class="diff__whole" tabIndex={0} aria-label={`New contents of ${change.path}`}>
            {after}
          </pre>
        </>
      ) : parts.length === 0 ? (
        <p class="ws-muted">No difference from the file as it is now.</p>
      ) : (
        <div class="diff__scroll" tabIndex={0} aria-label={`Diff of ${change.path}`} role="group">
          <table class="diff__table">
            <tbody>
              {parts.map((hunk, h) => [
                h > 0 ? (
                  <tr key={`gap-${h}`} class="diff__gap">
                    <td colSpan={3}>⋯</td>
                  </tr>
                ) : null,
                ...hunk.lines.map((line, i) => (
                  <tr key={`${h}-${i}`} class={`diff__line diff__line--${line.op}`}>
                    <td class="diff__no" aria-hidden="true">
                      {line.old ?? ""}
                    </td>
                    <td class="diff__no" aria-hidden="true">
                      {line.new ?? ""}
                    </td>
                    <td class="diff__text">
                      <span class="visually-hidden">{spoken[line.op]}</span>
                      <span class="diff__sign" aria-hidden="true">
                        {signs[line.op]}
                      </span>
                      {line.text}
                    </td>
                  </tr>
                )),
              ])}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
