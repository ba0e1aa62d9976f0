// `/account`: who you are, and your personal API tokens (create — shown once —, list, revoke).
import { LoadStatus, useLoad } from "../components/LoadStatus";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, auth, type User } from "../api";
import { tokenRules, tokens, type ApiToken, type CreatedToken } from "../api/tokens";
import { usePageTitle } from "../usePageTitle";
import { errorMessage } from "./CatalogPage";
import "./pages.css";

function formatDate(iso: string | null, never = "—"): string {
  if (!iso) return never;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

const expiryChoices = [
  { value: "30", label: "30 days" },
  { value: "90", label: "90 days" },
  { value: "365", label: "1 year" },
  { value: "", label: "Never" },
];


export function AccountPage({ user, onSignedOut }: { user: User; onSignedOut: () => void }) {
  usePageTitle("Account");
  const [reload, setReload] = useState(0);
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [load, setLoad] = useLoad((signal) => tokens.list(signal), [reload], errorMessage);

  return (
    <section class="page" aria-labelledby="account-heading">
      <h1 id="account-heading">Account</h1>
      <section class="panel" aria-labelledby="who-heading">
        <h2 id="who-heading">You</h2>
        <dl class="facts-grid">
          <div>
            <dt>Username</dt>
            <dd data-testid="username">{user.username}</dd>
          </div>
          <div>
            <dt>Email</dt>
            <dd>{user.email ?? "—"}</dd>
          </div>
          <div>
            <dt>Role</dt>
            <dd>
              <span class="badge">{user.role}</span>
            </dd>
          </div>
          <div>
            <dt>Member since</dt>
            <dd>{formatDate(user.created_at)}</dd>
          </div>
        </dl>
        <SignOut onSignedOut={onSignedOut} />
      </section>

      <section class="panel" aria-labelledby="tokens-heading">
        <h2 id="tokens-heading">Personal API tokens</h2>
        <p class="hint">
          For scripts and the command line: send <code>Authorization: Bearer &lt;token&gt;</code>. A token acts as you; revoke
          it when you no longer need it. <a href="/api/docs">API docs</a>
        </p>
        <CreateToken
          onCreated={(answer) => {
            setCreated(answer);
            setNotice(null);
            setLoad((current) => (current.state === "ready" ? { state: "ready", tokens: [answer.token, ...current.tokens] } : current));
          }}
        />
        {created && <NewSecret created={created} onDismiss={() => setCreated(null)} />}
        <p class="status-line" role="status">
          {notice ?? ""}
        </p>
        <LoadStatus load={load} loading="Loading tokens…" onRetry={() => setReload((n) => n + 1)} />
        {load.state === "ready" &&
          (load.tokens.length === 0 ? (
            <p>No tokens yet.</p>
          ) : (
            <TokenTable
              tokens={load.tokens}
              onRevoked={(token) => {
                if (created?.token.id === token.id) setCreated(null);
                setNotice(`Token “${token.name}” revoked.`);
                setLoad((current) =>
                  current.state === "ready" ? { state: "ready", tokens: current.tokens.filter((t) => t.id !== token.id) } : current,
                );
              }}
            />
          ))}
      </section>
    </section>
  );
}

function SignOut({ onSignedOut }: { onSignedOut: () => void }) {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const signOut = async () => {
    setPending(true);
    setError(null);
    try {
      await auth.logout();
      onSignedOut();
    } catch (caught) {
      if (caught instanceof ApiError && caught.isUnauthorized) return onSignedOut();
      setError(errorMessage(caught));
      setPending(false);
    }
  };
  return (
    <div class="stack" style={{ marginTop: "1rem", justifyItems: "start" }}>
      {error !== null && (
        <p role="alert" class="alert">
          {error}
        </p>
      )}
      <button type="button" class="button" onClick={signOut} disabled={pending}>
        {pending ? "Signing out…" : "Sign out"}
      </button>
    </div>
  );
}

function CreateToken({ onCreated }: { onCreated: (created: CreatedToken) => void }) {
  const [name, setName] = useState("");
  const [expiry, setExpiry] = useState("90");
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (name.trim() === "") {
      setError("Give the token a name, such as the script or machine that will use it.");
      return;
    }
    setPending(true);
    setError(null);
    try {
      const body = expiry === "" ? { name: name.trim() } : { name: name.trim(), expires_in_days: Number(expiry) };
      onCreated(await tokens.create(body));
      setName("");
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setPending(false);
    }
  };

  return (
    <form class="stack" onSubmit={submit} aria-labelledby="create-token-heading">
      <h3 id="create-token-heading" class="visually-hidden">
        Create a token
      </h3>
      <div class="token-form">
        <div class="field">
          <label for="token-name">Token name</label>
          <input
            id="token-name"
            maxLength={tokenRules.name.maxLength}
            autocomplete="off"
            placeholder="e.g. laptop CLI"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="token-expiry">Expires</label>
          <select id="token-expiry" value={expiry} onChange={(e) => setExpiry(e.currentTarget.value)}>
            {expiryChoices.map((c) => (
              <option key={c.value} value={c.value}>
                {c.label}
              </option>
            ))}
          </select>
        </div>
        <button type="submit" class="button button--accent" disabled={pending}>
          {pending ? "Creating…" : "Create token"}
        </button>
      </div>
      {error !== null && (
        <p role="alert" class="alert">
          {error}
        </p>
      )}
    </form>
  );
}

function NewSecret({ created, onDismiss }: { created: CreatedToken; onDismiss: () => void }) {
  const [copied, setCopied] = useState(false);
  const [copyError, setCopyError] = useState<string | null>(null);
  const fieldRef = useRef<HTMLInputElement>(null);
  useEffect(() => {
    fieldRef.current?.focus();
    fieldRef.current?.select();
  }, [created.secret]);

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.secret);
      setCopied(true);
    } catch {
      setCopyError("Could not copy: select the token and copy it yourself.");
    }
  };

  return (
    <section class="notice stack" aria-labelledby="new-token-heading" style={{ marginTop: "1rem" }}>
      <h3 id="new-token-heading" style={{ margin: 0 }}>
        Your new token “{created.token.name}”
      </h3>
      <p role="status" style={{ margin: 0 }}>
        <strong>Copy it now: it is shown only this once.</strong> sandpit keeps only a hash and cannot show it again.
      </p>
      <div class="copy-field">
        <label for="new-token" class="visually-hidden">
          New token
        </label>
        <input id="new-token" ref={fieldRef} readOnly value={created.secret} onFocus={(e) => e.currentTarget.select()} />
        <button type="button" class="button button--small" onClick={copy}>
          {copied ? "Copied" : "Copy"}
        </button>
        <button type="button" class="button button--small" onClick={onDismiss}>
          Done
        </button>
      </div>
      {copyError !== null && (
        <p role="alert" class="alert">
          {copyError}
        </p>
      )}
    </section>
  );
}

function TokenTable({ tokens: list, onRevoked }: { tokens: ApiToken[]; onRevoked: (token: ApiToken) => void }) {
  return (
    <div class="table-wrap">
      <table class="table" aria-label="Your tokens">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Prefix</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">Expires</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {list.map((t) => (
            <TokenRow key={t.id} token={t} onRevoked={onRevoked} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function TokenRow({ token, onRevoked }: { token: ApiToken; onRevoked: (token: ApiToken) => void }) {
  const [confirming, setConfirming] = useState(false);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (confirming) confirmRef.current?.focus();
  }, [confirming]);

  const revoke = async () => {
    setPending(true);
    setError(null);
    try {
      await tokens.revoke(token.id);
      onRevoked(token);
    } catch (caught) {
      setError(errorMessage(caught));
      setPending(false);
    }
  };

  return (
    <tr>
      <th scope="row">{token.name}</th>
      <td>
        <code>{token.prefix}…</code>
      </td>
      <td>{formatDate(token.created_at)}</td>
      <td>{formatDate(token.last_used_at, "never")}</td>
      <td>{formatDate(token.expires_at, "never")}</td>
      <td>
        {confirming ? (
          <div class="row-actions" role="group" aria-label={`Confirm revoking ${token.name}`}>
            <button type="button" ref={confirmRef} class="button button--small button--danger" onClick={revoke} disabled={pending}>
              {pending ? "Revoking…" : `Yes, revoke ${token.name}`}
            </button>
            <button type="button" class="button button--small" onClick={() => setConfirming(false)} disabled={pending}>
              Cancel
            </button>
          </div>
        ) : (
          <button type="button" class="button button--small button--danger" onClick={() => setConfirming(true)}>
            Revoke<span class="visually-hidden"> {token.name}</span>
          </button>
        )}
        {error !== null && (
          <p role="alert" class="alert">
            {error}
          </p>
        )}
      </td>
    </tr>
  );
}
