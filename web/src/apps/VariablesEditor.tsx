// An app's environment: its variables (shown and edited) and its secrets (write-only: only their
// names come back). Both apply from the next deploy or start. The API replaces the secrets
// whole, so setting them sends every one: a secret kept needs its value again.
import type { TargetedInputEvent } from "preact";
import { useState } from "preact/hooks";
import { apps, type App } from "../api/apps";
import { errorMessage } from "../pages/CatalogPage";

interface Row {
  key: number;
  name: string;
  value: string;
}

let nextKey = 1;
const row = (name = "", value = ""): Row => ({ key: nextKey++, name, value });

// What the server accepts, so a typo is explained before it is sent (it also refuses the names
// the platform sets, such as PORT).
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;

interface EditorProps {
  /** "variable" or "secret": the words on the fields and buttons. */
  noun: string;
  initial: Row[];
  secret: boolean;
  onSave: (values: Record<string, string>) => Promise<void>;
}

function PairsEditor({ noun, initial, secret, onSave }: EditorProps) {
  const [rows, setRows] = useState<Row[]>(initial);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState("");
  const id = `${noun}s`;

  const edit = (key: number, change: Partial<Row>) => {
    setSaved("");
    setRows((all) => all.map((r) => (r.key === key ? { ...r, ...change } : r)));
  };
  const valueField = (r: Row) => ({
    id: `${id}-value-${r.key}`,
    class: "mono",
    spellcheck: false,
    value: r.value,
    onInput: (e: TargetedInputEvent<HTMLInputElement>) => edit(r.key, { value: e.currentTarget.value }),
  });

  const submit = async (event: Event) => {
    event.preventDefault();
    const values: Record<string, string> = {};
    for (const r of rows) {
      const name = r.name.trim();
      if (!NAME.test(name)) {
        setError(`“${name}” is not a ${noun} name: letters, digits and _, not starting with a digit.`);
        return;
      }
      if (name in values) {
        setError(`Two ${noun}s are named ${name}.`);
        return;
      }
      if (secret && r.value === "") {
        setError(`Give ${name} a value: secrets are never shown again, so saving sends each one.`);
        return;
      }
      values[name] = r.value;
    }
    setPending(true);
    setError(null);
    try {
      await onSave(values);
      setSaved(rows.length === 0 ? `No ${noun}s now.` : `Saved ${rows.length} ${noun}${rows.length === 1 ? "" : "s"}.`);
      if (secret) setRows((all) => all.map((r) => ({ ...r, value: "" })));
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setPending(false);
    }
  };

  return (
    <form class="pairs" onSubmit={submit} aria-labelledby={`${id}-heading`}>
      {rows.length > 0 ? (
        <div class="pairs__head" aria-hidden="true">
          <span>Name</span>
          <span>{secret ? "New value" : "Value"}</span>
        </div>
      ) : null}
      {rows.map((r, i) => (
        <div key={r.key} class="pairs__row" role="group" aria-label={`${noun} ${i + 1}`}>
          <label class="visually-hidden" for={`${id}-name-${r.key}`}>
            Name of {noun} {i + 1}
          </label>
          <input
            id={`${id}-name-${r.key}`}
            class="mono"
            autocomplete="off"
            spellcheck={false}
            value={r.name}
            placeholder="NAME"
            onInput={(e) => edit(r.key, { name: e.currentTarget.value })}
          />
          <label class="visually-hidden" for={`${id}-value-${r.key}`}>
            Value of {noun} {i + 1}
          </label>
          {secret ? (
            <input {...valueField(r)} type="password" autocomplete="new-password" />
          ) : (
            <input {...valueField(r)} type="text" autocomplete="off" />
          )}
          <button
            type="button"
            class="button button--small"
            onClick={() => {
              setSaved("");
              setRows((all) => all.filter((x) => x.key !== r.key));
            }}
          >
            Remove<span class="visually-hidden"> {r.name.trim() || `${noun} ${i + 1}`}</span>
          </button>
        </div>
      ))}
      {error !== null ? (
        <p role="alert" class="alert">
          {error}
        </p>
      ) : null}
      <div class="row-actions">
        <button
          type="button"
          class="button button--small"
          onClick={() => {
            setSaved("");
            setRows((all) => [...all, row()]);
          }}
        >
          Add {noun}
        </button>
        <button type="submit" class="button button--small button--accent" disabled={pending}>
          {pending ? "Saving…" : `Save ${noun}s`}
        </button>
        <span class="hint" role="status">
          {saved}
        </span>
      </div>
    </form>
  );
}

export function VariablesEditor({ app, onSaved }: { app: App; onSaved: (app: App) => void }) {
  return (
    <section class="panel" aria-labelledby="environment-heading">
      <h2 id="environment-heading">Environment</h2>
      <p class="hint">Changes apply from the next deploy or start.</p>
      <h3 id="variables-heading">Variables</h3>
      <PairsEditor
        noun="variable"
        secret={false}
        initial={Object.entries(app.env).map(([name, value]) => row(name, value))}
        onSave={async (env) => onSaved(await apps.update(app.id, { env }))}
      />
      <h3 id="secrets-heading">Secrets</h3>
      <p class="hint" id="secrets-hint">
        {app.secrets.length > 0 ? (
          <>
            Set: {app.secrets.map((name, i) => (
              <span key={name}>
                {i > 0 ? ", " : ""}
                <code>{name}</code>
              </span>
            ))}
            .{" "}
          </>
        ) : (
          "None set. "
        )}
        Values are write-only: sandpit never shows them again. Saving replaces all secrets, so enter the value of each one you
        keep; remove a row to delete that secret.
      </p>
      <PairsEditor
        noun="secret"
        secret={true}
        initial={app.secrets.map((name) => row(name))}
        onSave={async (secrets) => onSaved(await apps.update(app.id, { secrets }))}
      />
    </section>
  );
}
