// The session's terminal: xterm.js over the WebSocket of docs/terminal-protocol.md. The protocol
// decisions live in terminalSocket.ts; this is the driver (socket, emulator, timers).
import { FitAddon } from "@xterm/addon-fit";
import { Terminal as XTerm } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { sessions } from "../api/labs";
import {
  AckCounter,
  ackMessage,
  backoffMs,
  isFinalClose,
  parseServerMessage,
  pingMessage,
  resizeMessage,
  splitInput,
} from "./terminalSocket";

export interface TerminalHandle {
  /** Types `text` into the shell (as if typed), then focuses the terminal. */
  type(text: string): void;
  focus(): void;
}

type Status = "connecting" | "connected" | "reconnecting" | "exited";

interface Props {
  sessionId: string;
  handleRef: { current: TerminalHandle | null };
  /** Called after the learner presses Enter (files may have changed). */
  onActivity?: () => void;
  /** Called when the server refuses the terminal because the session is over. */
  onSessionGone?: () => void;
}

export function Terminal({ sessionId, handleRef, onActivity, onSessionGone }: Props) {
  const hostRef = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<Status>("connecting");
  const [message, setMessage] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const callbacks = useRef({ onActivity, onSessionGone });
  callbacks.current = { onActivity, onSessionGone };

  useEffect(() => {
    const host = hostRef.current;
    if (!host) return;
    const term = new XTerm({
      cursorBlink: true,
      fontSize: 14,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      scrollback: 5000,
      screenReaderMode: false,
      theme: { background: "#111418", foreground: "#e6e8eb" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host);
    term.textarea?.setAttribute("aria-label", "Terminal input");
    safeFit(fit);

    const encoder = new TextEncoder();
    const acks = new AckCounter();
    let socket: WebSocket | null = null;
    let disposed = false;
    let failures = 0;
    let retryTimer: number | undefined;
    let sawExit = false;
    let errorCode: string | null = null;

    const send = (data: string | Uint8Array<ArrayBuffer>) => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(data);
    };
    const sendInput = (text: string) => {
      for (const frame of splitInput(encoder.encode(text))) send(frame);
      if (text.includes("\r")) callbacks.current.onActivity?.();
    };
    const sendResize = () => send(resizeMessage(term.rows, term.cols));

    // Escape, then Tab within 2 s, leaves the terminal (Tab alone is the shell's completion).
    let escapeAt = 0;
    term.attachCustomKeyEventHandler((event) => {
      if (event.type !== "keydown") return true;
      if (event.key === "Escape") {
        escapeAt = Date.now();
        return true;
      }
      if (event.key === "Tab" && Date.now() - escapeAt < 2000) {
        escapeAt = 0;
        term.blur();
        const focusable = [...document.querySelectorAll<HTMLElement>("button, a[href], input, textarea, select, [tabindex='0'], .cm-content")].filter(
          (el) => !host.contains(el) && el.offsetParent !== null,
        );
        const follows = (el: HTMLElement) => (host.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING) !== 0;
        const target = event.shiftKey ? focusable.filter((el) => !follows(el)).at(-1) : focusable.find(follows);
        target?.focus();
        return false;
      }
      escapeAt = 0;
      return true;
    });

    const inputSub = term.onData((data) => sendInput(data));
    const binarySub = term.onBinary((data) => {
      const bytes = Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff);
      for (const frame of splitInput(bytes)) send(frame);
    });
    const resizeSub = term.onResize(() => sendResize());

    const connect = () => {
      if (disposed) return;
      sawExit = false;
      errorCode = null;
      acks.reset();
      const ws = new WebSocket(sessions.terminalUrl(sessionId, term.rows, term.cols));
      ws.binaryType = "arraybuffer";
      socket = ws;
      ws.onmessage = (event) => {
        if (socket !== ws) return;
        if (typeof event.data === "string") {
          const msg = parseServerMessage(event.data);
          if (!msg) return;
          if (msg.type === "hello") {
            failures = 0;
            setStatus("connected");
            setMessage(null);
            // The shell may have a size from an earlier attach: ours wins.
            if (msg.rows !== term.rows || msg.cols !== term.cols) sendResize();
          } else if (msg.type === "exit") {
            sawExit = true;
          } else if (msg.type === "error") {
            errorCode = msg.code;
            setMessage(msg.message);
          }
          return;
        }
        const bytes = new Uint8Array(event.data as ArrayBuffer);
        term.write(bytes, () => {
          if (socket !== ws) return;
          const n = acks.consumed(bytes.length);
          if (n > 0) ws.send(ackMessage(n));
        });
      };
      ws.onclose = (event) => {
        if (socket !== ws || disposed) return;
        socket = null;
        if (isFinalClose(event.code, sawExit, errorCode)) {
          setStatus("exited");
          return;
        }
        failures += 1;
        setStatus("reconnecting");
        // A refused upgrade looks like a drop; after a few, ask whether the session is over.
        if (failures >= 3) {
          sessions.get(sessionId).then(
            (s) => {
              if (s.status === "ended") callbacks.current.onSessionGone?.();
            },
            () => undefined,
          );
        }
        retryTimer = window.setTimeout(connect, backoffMs(failures - 1));
      };
    };

    // Acknowledge the tail of a burst, and keep the connection alive through idle proxies.
    const ackTimer = window.setInterval(() => {
      const n = acks.take();
      if (n > 0) send(ackMessage(n));
    }, 500);
    const pingTimer = window.setInterval(() => send(pingMessage()), 25_000);

    // Follow the panel's size: fit, and the onResize above tells the server.
    let fitFrame = 0;
    const observer = new ResizeObserver(() => {
      cancelAnimationFrame(fitFrame);
      fitFrame = requestAnimationFrame(() => safeFit(fit));
    });
    observer.observe(host);

    handleRef.current = {
      type: (text) => {
        sendInput(text);
        term.focus();
      },
      focus: () => term.focus(),
    };

    connect();

    return () => {
      disposed = true;
      handleRef.current = null;
      clearTimeout(retryTimer);
      clearInterval(ackTimer);
      clearInterval(pingTimer);
      cancelAnimationFrame(fitFrame);
      observer.disconnect();
      inputSub.dispose();
      binarySub.dispose();
      resizeSub.dispose();
      socket?.close(1000);
      socket = null;
      term.dispose();
    };
  }, [sessionId, generation, handleRef]);

  return (
    <section class="ws-terminal" aria-label="Terminal">
      <div class="ws-terminal__bar">
        <h2 class="ws-panel-title">Terminal</h2>
        <span role="status" class="ws-terminal__status">
          {status === "connecting" ? "Connecting…" : status === "reconnecting" ? "Reconnecting…" : status === "exited" ? "The shell has ended." : ""}
          {message ? ` ${message}` : ""}
        </span>
        {status === "exited" ? (
          <button type="button" class="ws-button" onClick={() => setGeneration((g) => g + 1)}>
            Restart terminal
          </button>
        ) : null}
        <span class="ws-terminal__help">Esc then Tab leaves the terminal</span>
      </div>
      <div class="ws-terminal__host" ref={hostRef} data-testid="terminal" />
    </section>
  );
}

function safeFit(fit: FitAddon): void {
  try {
    fit.fit();
  } catch {
    // Not laid out yet (zero size): the ResizeObserver fits it later.
  }
}
