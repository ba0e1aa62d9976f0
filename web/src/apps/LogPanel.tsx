// An app's log, live: its processes' stdout and stderr and what the platform did to it, each
// line labelled with its stream. Followed for as long as the page is open (appLogs.ts resumes
// after a drop with Last-Event-ID); the newest MAX_SHOWN_LINES stay in the page, and it scrolls
// to new lines unless the reader turns that off to read back.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { apps, type LogLine } from "../api/apps";
import { errorMessage } from "../pages/CatalogPage";
import { followLogs, keep, MAX_SHOWN_LINES, type Kept } from "./appLogs";

/** Lines asked for when the page opens. */
const TAIL = 200;

const clock = (iso: string) => {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
};

interface Props {
  appId: string;
  /** A line came: the app's state may have changed (it was stopped, started, answered, exited). */
  onLine: (line: LogLine) => void;
}

export function LogPanel({ appId, onLine }: Props) {
  const [kept, setKept] = useState<Kept>({ lines: [], cut: 0 });
  const [connection, setConnection] = useState<"connecting" | "open" | { retrying: string } | { failed: string }>("connecting");
  const [follow, setFollow] = useState(0);
  const [autoscroll, setAutoscroll] = useState(true);
  const lastSeq = useRef(0);
  const logRef = useRef<HTMLDivElement>(null);
  const lineCallback = useRef(onLine);
  lineCallback.current = onLine;

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    setConnection("connecting");
    followLogs({
      open: (after, s) => apps.logs(appId, after, TAIL, s),
      after: lastSeq.current,
      signal,
      onOpen: () => setConnection("open"),
      onLine: (line) => {
        lastSeq.current = line.seq;
        setKept((k) => keep(k, line));
        lineCallback.current(line);
      },
      onRetry: (_failure, ms) => setConnection({ retrying: `Connection lost: reconnecting in ${Math.max(1, Math.round(ms / 1000))} s…` }),
    }).catch((error: unknown) => {
      if (!signal.aborted) setConnection({ failed: errorMessage(error) });
    });
    return () => controller.abort();
  }, [appId, follow]);

  useLayoutEffect(() => {
    const el = logRef.current;
    if (autoscroll && el) el.scrollTop = el.scrollHeight;
  }, [kept, autoscroll]);

  return (
    <section class="panel panel--wide" aria-labelledby="logs-heading">
      <div class="logs__head">
        <h2 id="logs-heading">Log</h2>
        <label class="check">
          <input type="checkbox" checked={autoscroll} onChange={(e) => setAutoscroll(e.currentTarget.checked)} />
          Scroll to new lines
        </label>
      </div>
      <p class="hint">
        {connection === "connecting"
          ? "Connecting…"
          : connection === "open"
            ? `Following the log live; the newest ${MAX_SHOWN_LINES} lines stay here.`
            : "retrying" in connection
              ? connection.retrying
              : null}
      </p>
      {typeof connection === "object" && "failed" in connection ? (
        <div class="alert deploy__alert" role="alert">
          <span>The log stopped: {connection.failed}</span>
          <button type="button" class="button button--small" onClick={() => setFollow((n) => n + 1)}>
            Try again
          </button>
        </div>
      ) : null}
      <div class="log" role="log" aria-label="App log" tabIndex={0} ref={logRef}>
        {kept.cut > 0 ? <p class="log__cut">{kept.cut} earlier lines are no longer shown.</p> : null}
        {kept.lines.length === 0 ? <p class="log__empty">Nothing logged yet.</p> : null}
        {kept.lines.map((l) => (
          <div key={l.seq} class={`log__line log__line--${l.stream}`}>
            <span class="log__stream">{l.stream}</span> <time class="log__time" dateTime={l.at}>{clock(l.at)}</time> <span class="log__text">{l.text}</span>
          </div>
        ))}
      </div>
    </section>
  );
}
