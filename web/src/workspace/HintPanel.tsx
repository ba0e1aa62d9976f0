// Hint (for the current step) and Explain (a topic, code or an error message), with who
// answered: the AI model, the lab's own hints, or the last check's hints.
import { useState } from "preact/hooks";
import { sessions, type HintResponse } from "../api/labs";

interface Props {
  sessionId: string;
  stepId: string | undefined;
}

export function sourceLabel(r: HintResponse): string {
  if (r.source === "llm") return `From the AI${r.model ? ` (${r.model})` : ""}`;
  const of = r.level && r.levels ? `, ${r.level} of ${r.levels}` : "";
  if (r.source === "authored") return `From the lab's hints${of}`;
  if (r.source === "failures") return `From the last check's hints${of}`;
  return `From ${r.source}${of}`;
}

export function HintPanel({ sessionId, stepId }: Props) {
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<HintResponse | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [explainOpen, setExplainOpen] = useState(false);
  const [kind, setKind] = useState<"topic" | "code" | "error">("topic");
  const [text, setText] = useState("");

  const run = async (call: () => Promise<HintResponse>) => {
    setBusy(true);
    setError(null);
    try {
      setAnswer(await call());
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="ws-hint" aria-label="Help">
      <div class="ws-panel-bar">
        <button type="button" class="ws-button" disabled={busy} onClick={() => void run(() => sessions.hint(sessionId, stepId))}>
          Hint
        </button>
        <button type="button" class="ws-button" aria-expanded={explainOpen} onClick={() => setExplainOpen(!explainOpen)}>
          Explain…
        </button>
        {busy ? <span role="status" class="ws-muted">Thinking…</span> : null}
      </div>
      {explainOpen ? (
        <form
          class="ws-explain"
          onSubmit={(e) => {
            e.preventDefault();
            if (text.trim()) void run(() => sessions.explain(sessionId, { [kind]: text }));
          }}
        >
          <label>
            Explain a
            <select value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value as typeof kind)}>
              <option value="topic">topic</option>
              <option value="code">piece of code</option>
              <option value="error">error message</option>
            </select>
          </label>
          <label>
            What to explain
            <textarea rows={3} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} maxLength={kind === "code" ? 20000 : kind === "error" ? 5000 : 200} />
          </label>
          <button type="submit" class="ws-button" disabled={busy}>
            Explain
          </button>
        </form>
      ) : null}
      {error ? (
        <p role="alert" class="ws-alert">
          {error}
        </p>
      ) : null}
      {answer ? (
        <div class="ws-answer" role="region" aria-label="Hint">
          <p class="ws-answer__text">{answer.text}</p>
          <p class="ws-muted ws-answer__source">{sourceLabel(answer)}</p>
        </div>
      ) : null}
    </section>
  );
}
