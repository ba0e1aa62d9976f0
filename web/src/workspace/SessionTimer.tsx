// Time left in the session, Extend and End session.
import { useEffect, useState } from "preact/hooks";
import { sessions, type SessionInfo } from "../api/labs";

interface Props {
  session: SessionInfo;
  onChange: (session: SessionInfo) => void;
  onExpired: () => void;
  onEnded: () => void;
  onError: (message: string) => void;
}

export function formatLeft(ms: number): string {
  if (ms <= 0) return "0:00";
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

export function SessionTimer({ session, onChange, onExpired, onEnded, onError }: Props) {
  const [now, setNow] = useState(Date.now());
  const [busy, setBusy] = useState(false);
  const left = Date.parse(session.expires_at) - now;

  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  useEffect(() => {
    if (left <= 0) onExpired();
  }, [left <= 0]);

  const extend = async () => {
    setBusy(true);
    try {
      onChange(await sessions.extend(session.id));
    } catch (e) {
      onError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  const end = async () => {
    if (!window.confirm("End this session? Your sandbox and its files will be deleted.")) return;
    setBusy(true);
    try {
      await sessions.end(session.id);
      onEnded();
    } catch (e) {
      onError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  };

  return (
    <div class="ws-timer" role="group" aria-label="Session">
      <span class={left < 5 * 60_000 ? "ws-timer__left is-low" : "ws-timer__left"} aria-live={left < 5 * 60_000 ? "polite" : "off"}>
        Time left{" "}
        {formatLeft(left)}
      </span>
      <button type="button" class="ws-button" disabled={busy} onClick={() => void extend()}>
        Extend
      </button>
      <button type="button" class="ws-button ws-button--danger" disabled={busy} onClick={() => void end()}>
        End session
      </button>
    </div>
  );
}
