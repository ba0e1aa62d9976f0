// `/sessions`: the learner's live sessions (time left, extend, end, share), and `/share/:id`: the
// read-only view of a shared terminal.
import { LoadStatus } from "../components/LoadStatus";
import { clockOf } from "../time";
import type { ComponentType } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { catalog } from "../api/catalog";
import { sessions, type SessionInfo } from "../api/sessions";
import type { TerminalState } from "../components/ReadOnlyTerminal";
import { Link } from "../router";
import { usePageTitle } from "../usePageTitle";
import { errorMessage } from "./CatalogPage";
import "./pages.css";

const REFRESH_MS = 30_000;

/** The current time, re-rendering the caller every second. */
function useNow(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, []);
  return now;
}


function formatClock(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

type Load = { state: "loading" } | { state: "error"; message: string } | { state: "ready"; sessions: SessionInfo[] };

export function SessionsPage() {
  usePageTitle("Sessions");
  const [load, setLoad] = useState<Load>({ state: "loading" });
  const [titles, setTitles] = useState<Record<string, string>>({});
  const [notice, setNotice] = useState<string | null>(null);
  const [refresh, setRefresh] = useState(0);
  const now = useNow();

  useEffect(() => {
    const controller = new AbortController();
    sessions.list(controller.signal).then(
      ({ sessions: list }) => setLoad({ state: "ready", sessions: list }),
      (error: unknown) => {
        if (!controller.signal.aborted) setLoad({ state: "error", message: errorMessage(error) });
      },
    );
    const timer = window.setTimeout(() => setRefresh((n) => n + 1), REFRESH_MS);
    return () => {
      controller.abort();
      window.clearTimeout(timer);
    };
  }, [refresh]);

  // Lab titles for lab sessions; the slug is shown if the catalog cannot be read.
  useEffect(() => {
    const controller = new AbortController();
    catalog.list(controller.signal).then(
      ({ labs }) => setTitles(Object.fromEntries(labs.map((l) => [l.slug, l.title]))),
      () => undefined,
    );
    return () => controller.abort();
  }, []);

  const replace = (updated: SessionInfo) =>
    setLoad((current) =>
      current.state === "ready" ? { state: "ready", sessions: current.sessions.map((s) => (s.id === updated.id ? updated : s)) } : current,
    );
  const remove = (id: string) =>
    setLoad((current) => (current.state === "ready" ? { state: "ready", sessions: current.sessions.filter((s) => s.id !== id) } : current));

  const live = load.state === "ready" ? load.sessions.filter((s) => s.status !== "ended") : [];

  return (
    <section class="page" aria-labelledby="sessions-heading">
      <h1 id="sessions-heading">Sessions</h1>
      <p class="page__lead">Your live sandboxes. A session ends when its time runs out; extend it to keep working.</p>
      <p class="status-line" role="status">
        {notice ?? ""}
      </p>
      <LoadStatus load={load} loading="Loading sessions…" onRetry={() => setRefresh((n) => n + 1)} />
      {load.state === "ready" &&
        (live.length === 0 ? (
          <p>
            No live sessions. <Link href="/labs">Start a lab</Link> to get one.
          </p>
        ) : (
          <ul class="session-list" aria-label="Live sessions">
            {live.map((s) => (
              <SessionItem
                key={s.id}
                session={s}
                title={s.lab ? (titles[s.lab] ?? s.lab) : `Sandbox (${s.environment})`}
                now={now}
                onUpdated={replace}
                onEnded={(ended) => {
                  remove(ended.id);
                  setNotice(`Session ended.`);
                }}
              />
            ))}
          </ul>
        ))}
    </section>
  );
}

interface ItemProps {
  session: SessionInfo;
  title: string;
  now: number;
  onUpdated: (session: SessionInfo) => void;
  onEnded: (session: SessionInfo) => void;
}

function SessionItem({ session, title, now, onUpdated, onEnded }: ItemProps) {
  const [busy, setBusy] = useState<null | "extend" | "end" | "share">(null);
  const [error, setError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [shareUrl, setShareUrl] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const cancelRef = useRef<HTMLButtonElement>(null);
  const endRef = useRef<HTMLButtonElement>(null);
  const headingId = `session-${session.id}`;
  const left = new Date(session.expires_at).getTime() - now;

  useEffect(() => {
    if (confirming) cancelRef.current?.focus();
  }, [confirming]);

  const act = async (kind: "extend" | "end" | "share") => {
    setBusy(kind);
    setError(null);
    try {
      if (kind === "extend") onUpdated(await sessions.extend(session.id));
      else if (kind === "end") {
        await sessions.end(session.id);
        onEnded(session);
        return;
      } else {
        const link = await sessions.share(session.id);
        setShareUrl(`${location.origin}/share/${encodeURIComponent(session.id)}?token=${encodeURIComponent(link.token)}`);
        setCopied(false);
      }
    } catch (caught) {
      setError(errorMessage(caught));
    }
    setBusy(null);
  };

  const copy = async () => {
    if (!shareUrl) return;
    try {
      await navigator.clipboard.writeText(shareUrl);
      setCopied(true);
    } catch {
      setError("Could not copy: select the link and copy it yourself.");
    }
  };

  return (
    <li class="session" aria-labelledby={headingId}>
      <h2 id={headingId}>{title}</h2>
      <dl class="facts-grid">
        <div>
          <dt>Time left</dt>
          <dd class={left < 5 * 60_000 ? "time-left time-left--low" : "time-left"} data-testid="time-left">
            <time dateTime={session.expires_at} title={`Ends at ${formatClock(session.expires_at)}`}>
              {left <= 0 ? "expired" : clockOf(left)}
            </time>
          </dd>
        </div>
        <div>
          <dt>Status</dt>
          <dd>
            <span class="badge">{session.status}</span>
          </dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>{formatClock(session.created_at)}</dd>
        </div>
        <div>
          <dt>Environment</dt>
          <dd>{session.environment}</dd>
        </div>
      </dl>
      <div class="row-actions">
        {session.lab && (
          <Link href={`/labs/${encodeURIComponent(session.lab)}`} class="button button--small button--accent">
            Open<span class="visually-hidden"> {title}</span>
          </Link>
        )}
        <button type="button" class="button button--small" onClick={() => act("extend")} disabled={busy !== null}>
          {busy === "extend" ? "Extending…" : "Extend"}
          <span class="visually-hidden"> {title}</span>
        </button>
        <button type="button" class="button button--small" onClick={() => act("share")} disabled={busy !== null}>
          {busy === "share" ? "Sharing…" : "Share read-only terminal"}
        </button>
        <button
          type="button"
          ref={endRef}
          class="button button--small button--danger"
          onClick={() => setConfirming(true)}
          disabled={busy !== null || confirming}
        >
          End<span class="visually-hidden"> {title}</span>
        </button>
      </div>
      {confirming && (
        <div class="confirm" role="alertdialog" aria-labelledby={`${headingId}-confirm`}>
          <p id={`${headingId}-confirm`}>End this session? Its processes stop and its workspace is deleted.</p>
          <button type="button" class="button button--small button--danger" onClick={() => act("end")} disabled={busy !== null}>
            {busy === "end" ? "Ending…" : "End session"}
          </button>
          <button
            type="button"
            ref={cancelRef}
            class="button button--small"
            onClick={() => {
              setConfirming(false);
              requestAnimationFrame(() => endRef.current?.focus());
            }}
          >
            Cancel
          </button>
        </div>
      )}
      {shareUrl && (
        <div class="stack">
          <div class="copy-field">
            <label for={`${headingId}-share`}>Read-only link</label>
            <input id={`${headingId}-share`} readOnly value={shareUrl} onFocus={(e) => e.currentTarget.select()} />
            <button type="button" class="button button--small" onClick={copy}>
              {copied ? "Copied" : "Copy link"}
            </button>
          </div>
          <p class="hint">Anyone signed in with this link can watch this terminal (not type) while the session lives.</p>
        </div>
      )}
      {error !== null && (
        <p role="alert" class="alert">
          {error}
        </p>
      )}
    </li>
  );
}

type Viewer = ComponentType<{ url: string; label: string; onState: (state: TerminalState) => void }>;

/** `/share/:id?token=…`: someone's terminal, read-only. xterm.js is loaded only here. */
export function SharedTerminalPage({ sessionId }: { sessionId: string }) {
  usePageTitle("Shared terminal");
  const token = new URLSearchParams(location.search).get("token") ?? "";
  const [Viewer, setViewer] = useState<Viewer | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [state, setState] = useState<TerminalState>({ state: "connecting" });

  useEffect(() => {
    let cancelled = false;
    import("../components/ReadOnlyTerminal").then(
      (module) => {
        if (!cancelled) setViewer(() => module.default);
      },
      () => {
        if (!cancelled) setLoadError("Could not load the terminal viewer. Reload the page to try again.");
      },
    );
    return () => {
      cancelled = true;
    };
  }, []);

  const statusText =
    state.state === "connecting" ? "Connecting…" : state.state === "open" ? "Watching live (read-only)" : state.message;

  return (
    <section class="page" aria-labelledby="share-heading">
      <h1 id="share-heading">Shared terminal</h1>
      <p class="page__lead">A read-only view: you see what the session's owner sees, and cannot type.</p>
      {token === "" ? (
        <p role="alert" class="alert">
          This link has no share token. Ask for the whole link, ending in <code>?token=…</code>.
        </p>
      ) : (
        <>
          <p class={state.state === "error" ? "alert" : "status-line"} role={state.state === "error" ? "alert" : "status"}>
            {statusText}
          </p>
          {loadError !== null && (
            <p role="alert" class="alert">
              {loadError}
            </p>
          )}
          {Viewer && <Viewer url={sessions.terminalUrl(sessionId, { share: token })} label="Shared terminal (read-only)" onState={setState} />}
        </>
      )}
    </section>
  );
}
