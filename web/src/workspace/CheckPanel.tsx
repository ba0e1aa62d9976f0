// "Check": runs the judge on the current step over server-sent events and shows the progress,
// then the outcome: passed, or each failure with its hint, and the notes. A check that reports
// progress (an `image` check's build and run) shows it live in a log of its own.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { judgeStream, type Attempt } from "../api/labs";
import { appendLine, finishOutput, type CheckOutput } from "./checkOutput";
import { CheckOutputLog } from "./CheckOutputLog";
import { readJudgeStream } from "./judgeEvents";

interface Props {
  sessionId: string;
  stepId: string | undefined;
  /** The title of a step by id, for the outcome (the current step moves on after a pass). */
  titleOf: (stepId: string) => string | undefined;
  onAttempt: (attempt: Attempt) => void;
  onSessionEnded: () => void;
}

export function CheckPanel({ sessionId, stepId, titleOf, onAttempt, onSessionEnded }: Props) {
  const [running, setRunning] = useState(false);
  const [progress, setProgress] = useState("");
  const [attempt, setAttempt] = useState<Attempt | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [outputs, setOutputs] = useState<CheckOutput[]>([]);
  const outcomeRef = useRef<HTMLDivElement>(null);

  // The outcome appears below the button: bring it into view.
  useEffect(() => {
    if (attempt || error) outcomeRef.current?.scrollIntoView({ block: "nearest" });
  }, [attempt, error]);

  const check = async () => {
    setRunning(true);
    setError(null);
    setAttempt(null);
    setOutputs([]);
    setProgress("Starting the checks…");
    let total = 0;
    const kinds = new Map<number, string>();
    try {
      const response = await judgeStream(sessionId, stepId);
      if (!response.body) throw new ApiError(0, "no_body", "The server sent no result.");
      let result: Attempt | null = null;
      await readJudgeStream(response.body, (e) => {
        if (e.type === "started") {
          total = e.checks;
          setProgress(`Running ${total} check${total === 1 ? "" : "s"}…`);
        } else if (e.type === "check_started") {
          kinds.set(e.index, e.kind);
          setProgress(`Running ${e.index + 1} of ${total} checks…`);
        } else if (e.type === "check_output") {
          setOutputs((o) => appendLine(o, e, kinds.get(e.index)));
        } else if (e.type === "check_finished") {
          setOutputs((o) => finishOutput(o, e.index));
        } else if (e.type === "attempt") {
          result = e.attempt;
        } else if (e.type === "error") {
          if (e.code === "session_ended") onSessionEnded();
          throw new ApiError(500, e.code, e.message);
        }
      });
      if (!result) throw new ApiError(0, "no_result", "The check ended without a result. Please try again.");
      setAttempt(result);
      onAttempt(result);
    } catch (e) {
      if (e instanceof ApiError && e.code === "session_ended") onSessionEnded();
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setRunning(false);
      setProgress("");
      setOutputs((o) => finishOutput(o));
    }
  };

  const notes = attempt?.notes ? (Array.isArray(attempt.notes) ? attempt.notes : [attempt.notes]) : [];

  return (
    <section class="ws-check" aria-label="Check">
      <div class="ws-panel-bar">
        <button type="button" class="ws-button ws-button--primary" onClick={() => void check()} disabled={running || !stepId} aria-describedby="ws-check-progress">
          {running ? "Checking…" : "Check"}
        </button>
        <span id="ws-check-progress" role="status" class="ws-muted">
          {progress}
        </span>
      </div>
      {outputs.map((o) => (
        <CheckOutputLog key={o.index} output={o} />
      ))}
      <div ref={outcomeRef}>
      {error ? (
        <p role="alert" class="ws-alert">
          {error}
        </p>
      ) : null}
      {attempt ? (
        attempt.passed ? (
          <p class="ws-pass" role="status">
            ✓ Passed: {titleOf(attempt.step) ?? attempt.step}
          </p>
        ) : (
          <div class="ws-failures" role="region" aria-label="Check results">
            <p class="ws-fail">
              {attempt.failures.length} problem{attempt.failures.length === 1 ? "" : "s"} found
            </p>
            <ul aria-label="Failures">
              {attempt.failures.map((f, i) => (
                <li key={`${f.code}-${i}`} class="ws-failure">
                  <p class="ws-failure__message">
                    {f.message} <code class="ws-failure__code">{f.code}</code>
                  </p>
                  {f.hint ? (
                    <p class="ws-failure__hint">
                      <strong>Hint:</strong> {f.hint}
                    </p>
                  ) : null}
                </li>
              ))}
            </ul>
          </div>
        )
      ) : null}
      {notes.length > 0 ? (
        <details class="ws-notes">
          <summary>Notes ({notes.length})</summary>
          {notes.map((n, i) => (
            <pre key={i}>{n}</pre>
          ))}
        </details>
      ) : null}
      </div>
    </section>
  );
}
