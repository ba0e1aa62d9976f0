// Time left in the session, Extend and End session.
import { clockOf } from "../time";
import { useEffect, useState } from "preact/hooks";
import { sessions, type SessionInfo } from "../api/labs";

interface Props {
  session: SessionInfo;
  onChange: (session: SessionInfo) => void;
  onExpired: () => void;
  onEnded: () => void;
  onError: (message: string) => void;
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
        {clockOf(left)}
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
