// A watch-only xterm.js view of a session's terminal (docs/terminal-protocol.md): it writes what
// the server sends, follows the shell's size, acknowledges bytes for flow control, and never
// sends input or resizes. Loaded on demand, so xterm.js stays out of the main bundle.
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef } from "preact/hooks";

export type TerminalState =
  | { state: "connecting" }
  | { state: "open" }
  | { state: "ended"; message: string }
  | { state: "error"; message: string };

interface Props {
  /** The WebSocket URL (`…/terminal?share=TOKEN`). */
  url: string;
  label: string;
  onState: (state: TerminalState) => void;
}

const ACK_EVERY_BYTES = 64 * 1024;
const ACK_INTERVAL_MS = 1000;

interface ServerMessage {
  type: string;
  rows?: number;
  cols?: number;
  code?: number | string | null;
  signal?: number | null;
  message?: string;
}

export default function ReadOnlyTerminal({ url, label, onState }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const report = useRef(onState);
  report.current = onState;

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const term = new Terminal({
      disableStdin: true,
      cursorBlink: false,
      convertEol: false,
      scrollback: 1000,
      screenReaderMode: false,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace',
      fontSize: 14,
    });
    term.open(element);

    let unacked = 0;
    let closedByUs = false;
    let ended = false;
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    report.current({ state: "connecting" });

    const ack = () => {
      if (unacked > 0 && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: "ack", bytes: unacked }));
        unacked = 0;
      }
    };
    const timer = window.setInterval(ack, ACK_INTERVAL_MS);

    socket.onopen = () => report.current({ state: "open" });
    socket.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
      if (typeof event.data !== "string") {
        const bytes = new Uint8Array(event.data);
        term.write(bytes, () => {
          unacked += bytes.length;
          if (unacked >= ACK_EVERY_BYTES) ack();
        });
        return;
      }
      let message: ServerMessage;
      try {
        message = JSON.parse(event.data) as ServerMessage;
      } catch {
        return;
      }
      if ((message.type === "hello" || message.type === "size") && message.rows && message.cols) {
        term.resize(message.cols, message.rows);
      } else if (message.type === "exit") {
        ended = true;
        report.current({ state: "ended", message: "The shell has ended." });
      } else if (message.type === "error") {
        ended = true;
        report.current({
          state: message.code === "ended" ? "ended" : "error",
          message: message.message ?? "The terminal reported an error.",
        });
      }
    };
    socket.onclose = (event) => {
      if (closedByUs || ended) return;
      report.current(
        event.code === 1000
          ? { state: "ended", message: "The terminal has closed." }
          : { state: "error", message: "The connection to the terminal was lost, or this share link is not valid (any more)." },
      );
    };

    return () => {
      closedByUs = true;
      window.clearInterval(timer);
      socket.close();
      term.dispose();
    };
  }, [url]);

  return <div ref={host} class="terminal-view" role="region" aria-label={label} aria-readonly="true" />;
}
