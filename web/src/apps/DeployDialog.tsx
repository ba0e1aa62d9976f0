// The "Deploy as app" dialog: a name and a runtime (guessed from the files), then the app is
// created — or, when the user already has one of that name, reused — and deployed from what the
// page holds; the app's page follows the deploy's stages live.
import { useEffect, useRef, useState } from "preact/hooks";
import { appHref, appRules, apps, runtimes, type App, type AppRuntime, type DeploySource } from "../api/apps";
import { errorMessage } from "../pages/CatalogPage";
import { navigate } from "../router";
import { guessRuntime } from "./deploySteps";
import "../pages/pages.css";
import "../pages/apps.css";

export interface DeployDialogProps {
  /** The paths of the files to deploy, for the runtime guess. */
  paths: () => Promise<string[]>;
  /** Where the files come from, read when the deploy starts. */
  source: () => DeploySource;
  suggestedName: string;
  /** What gets deployed, in words: "the playground's files". */
  what: string;
  onClose: () => void;
}

const namePattern = new RegExp(`^(?:${appRules.name.pattern})$`);

export function DeployDialog({ paths, source, suggestedName, what, onClose }: DeployDialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const [name, setName] = useState(suggestedName);
  const [runtime, setRuntime] = useState<AppRuntime>("python");
  const [guessed, setGuessed] = useState(false);
  const [mine, setMine] = useState<App[]>([]);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const chosen = useRef(false);

  useEffect(() => {
    ref.current?.showModal();
    const controller = new AbortController();
    apps.list(controller.signal).then(
      ({ apps: found }) => setMine(found),
      // Without the list a name already taken is reported by the server when creating.
      () => undefined,
    );
    paths().then(
      (found) => {
        const guess = guessRuntime(found);
        if (guess && !chosen.current) {
          setRuntime(guess);
          setGuessed(true);
        }
      },
      () => undefined,
    );
    return () => controller.abort();
  }, []);

  const existing = mine.find((a) => a.name === name.trim());

  const submit = async (event: Event) => {
    event.preventDefault();
    const wanted = name.trim();
    if (!namePattern.test(wanted)) {
      setError(`The name: ${appRules.name.hint}`);
      return;
    }
    setPending(true);
    setError(null);
    try {
      const app = existing ?? (await apps.create({ name: wanted, runtime }));
      await apps.deploy(app.id, source());
      navigate(appHref(app.id));
    } catch (caught) {
      setError(errorMessage(caught));
      setPending(false);
    }
  };

  return (
    <dialog ref={ref} class="dialog" aria-labelledby="deploy-dialog-heading" onClose={onClose}>
      <form class="form" onSubmit={submit}>
        <h2 id="deploy-dialog-heading" class="dialog__title">
          Deploy as an app
        </h2>
        <p class="hint">Deploys {what} as a web app served by sandpit at its own address.</p>
        <div class="field">
          <label for="deploy-app-name">App name</label>
          <input
            id="deploy-app-name"
            autofocus
            maxLength={appRules.name.maxLength}
            autocomplete="off"
            spellcheck={false}
            value={name}
            aria-describedby="deploy-app-name-hint"
            onInput={(e) => setName(e.currentTarget.value)}
          />
          <p id="deploy-app-name-hint" class="hint">
            {existing ? `You have an app named ${existing.name}: this deploys a new version of it.` : appRules.name.hint}
          </p>
        </div>
        <div class="field">
          <label for="deploy-app-runtime">Runtime</label>
          <select
            id="deploy-app-runtime"
            value={existing?.runtime ?? runtime}
            disabled={existing !== undefined}
            aria-describedby="deploy-app-runtime-hint"
            onChange={(e) => {
              chosen.current = true;
              setGuessed(false);
              setRuntime(e.currentTarget.value as AppRuntime);
            }}
          >
            {runtimes.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
          <p id="deploy-app-runtime-hint" class="hint">
            {existing ? "The existing app's runtime." : guessed ? "Guessed from the files." : "Python serves main.py's app, Node runs server.js, static serves index.html."}
          </p>
        </div>
        {error !== null ? (
          <p role="alert" class="alert">
            {error}
          </p>
        ) : null}
        <div class="dialog__actions">
          <button type="submit" class="button button--accent" disabled={pending}>
            {pending ? "Deploying…" : "Deploy"}
          </button>
          <button type="button" class="button" onClick={() => ref.current?.close()}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
