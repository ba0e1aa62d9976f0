// The SQL console: one statement, run read-only (Run, or Ctrl/Cmd+Enter). A statement the
// server refuses as a write (409 `read_only`) can be run again in write mode, after a dialog
// that shows it and says it changes data; the tables are read again after a write. The
// database's own message for a statement it refused is shown as an alert.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { database, type QueryResult } from "../api/database";
import { errorMessage } from "../pages/CatalogPage";
import { databaseSays, summarize } from "./cells";
import { ResultGrid } from "./ResultGrid";

type Outcome =
  | { kind: "result"; result: QueryResult; wrote: boolean }
  | { kind: "refused"; sql: string }
  | { kind: "error"; message: string };

export function SqlConsole({ onWrote }: { onWrote: () => void }) {
  const [sql, setSql] = useState("");
  const [pending, setPending] = useState<null | "read" | "write">(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  // Each answer is a new live region's content, so the same message twice is heard twice.
  const [runs, setRuns] = useState(0);
  const [asking, setAsking] = useState<string | null>(null);
  const textRef = useRef<HTMLTextAreaElement>(null);

  const run = async (statement: string, write: boolean) => {
    if (pending !== null) return;
    if (statement.trim() === "") {
      setOutcome({ kind: "error", message: "Write a statement to run first." });
      setRuns((n) => n + 1);
      return;
    }
    setPending(write ? "write" : "read");
    try {
      const result = await database.query(statement, write);
      setOutcome({ kind: "result", result, wrote: write });
      if (write) onWrote();
    } catch (caught) {
      if (caught instanceof ApiError && caught.code === "read_only") setOutcome({ kind: "refused", sql: statement });
      else if (caught instanceof ApiError && caught.code === "validation_failed") setOutcome({ kind: "error", message: `The database says: ${databaseSays(caught.message)}` });
      else setOutcome({ kind: "error", message: errorMessage(caught) });
    } finally {
      setPending(null);
      setRuns((n) => n + 1);
    }
  };

  const status =
    pending === "read"
      ? "Running…"
      : pending === "write"
        ? "Running in write mode…"
        : outcome?.kind === "result"
          ? `${outcome.wrote ? "Ran in write mode. " : ""}${summarize(outcome.result)}`
          : "";

  return (
    <section class="panel db-console" aria-labelledby="console-heading">
      <h2 id="console-heading">SQL console</h2>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void run(sql, false);
        }}
      >
        <div class="field">
          <label for="db-sql">SQL statement</label>
          <textarea
            id="db-sql"
            ref={textRef}
            class="mono db-console__sql"
            rows={5}
            spellcheck={false}
            autocomplete="off"
            placeholder="SELECT * FROM notes ORDER BY id DESC LIMIT 10"
            value={sql}
            aria-describedby="db-sql-hint"
            onInput={(e) => {
              setSql(e.currentTarget.value);
              // The offer to write was for the statement as it was.
              if (outcome?.kind === "refused") setOutcome(null);
            }}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                void run(sql, false);
              }
            }}
          />
          <p id="db-sql-hint" class="hint">
            One statement; Ctrl+Enter (⌘+Enter) runs it. It runs read-only: one that changes data or tables is stopped, and you are asked before it runs in write
            mode.
          </p>
        </div>
        <div class="row-actions">
          <button type="submit" class="button button--accent" aria-busy={pending !== null}>
            {pending !== null ? "Running…" : "Run"}
          </button>
        </div>
      </form>
      <p class="status-line" role="status">
        {status}
      </p>
      <div key={runs}>
        {outcome?.kind === "refused" ? (
          <div class="db-refused">
            <p role="alert">This statement changes data or tables, so it was not run: the console is read-only unless you ask.</p>
            <button type="button" class="button button--small button--danger" onClick={() => setAsking(outcome.sql)}>
              Run in write mode…
            </button>
          </div>
        ) : null}
        {outcome?.kind === "error" ? (
          <p role="alert" class="alert db-console__error">
            {outcome.message}
          </p>
        ) : null}
      </div>
      {outcome?.kind === "result" && outcome.result.columns.length > 0 ? (
        <ResultGrid label="Result" columns={outcome.result.columns} rows={outcome.result.rows} />
      ) : null}
      {asking !== null ? (
        <WriteDialog
          sql={asking}
          onConfirm={() => {
            setAsking(null);
            void run(asking, true);
            textRef.current?.focus();
          }}
          onClose={() => setAsking(null)}
        />
      ) : null}
    </section>
  );
}

interface DialogProps {
  sql: string;
  onConfirm: () => void;
  /** Cancelled, or closed with Escape. */
  onClose: () => void;
}

/** Asks before a statement runs in write mode: names it, and says that it changes data for good. */
function WriteDialog({ sql, onConfirm, onClose }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const confirmed = useRef(false);
  useEffect(() => {
    ref.current?.showModal();
  }, []);

  return (
    <dialog
      ref={ref}
      class="dialog db-write-dialog"
      aria-labelledby="db-write-heading"
      aria-describedby="db-write-what"
      onClose={() => {
        if (!confirmed.current) onClose();
      }}
    >
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          confirmed.current = true;
          ref.current?.close();
          onConfirm();
        }}
      >
        <h2 id="db-write-heading" class="dialog__title">
          Run in write mode?
        </h2>
        <p id="db-write-what">This statement can change your data or your tables, and it is committed at once: there is no undo. Your apps see the change.</p>
        <pre class="db-statement" aria-label="The statement">
          {sql}
        </pre>
        <div class="dialog__actions">
          <button type="submit" class="button button--danger">
            Run in write mode
          </button>
          <button type="button" class="button" autofocus onClick={() => ref.current?.close()}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
