// One check's live output under the Check button: open and following the end while the check
// runs, collapsed when it finishes (the learner may open it again). Text only: the lines are
// JSX text, never markup.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { CheckOutput } from "./checkOutput";

/** How close to the end (px) still counts as "at the end", so the log keeps following. */
const FOLLOW_SLACK_PX = 24;

export function CheckOutputLog({ output }: { output: CheckOutput }) {
  const [open, setOpen] = useState(output.running);
  const logRef = useRef<HTMLPreElement>(null);
  // Follow the end unless the learner scrolled up to read something.
  const follow = useRef(true);

  useEffect(() => {
    setOpen(output.running);
  }, [output.running]);

  useLayoutEffect(() => {
    const log = logRef.current;
    if (open && log && follow.current) log.scrollTop = log.scrollHeight;
  }, [output.lines, open]);

  const label = `${output.kind === "image" ? "Build output" : "Output"} of ${output.code}`;
  const count = output.lines.length + output.dropped;
  const size = output.dropped ? `last ${output.lines.length} of ${count} lines` : `${count} line${count === 1 ? "" : "s"}`;

  return (
    <details class="ws-output" open={open} onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
      <summary>
        {label} ({output.running ? `running, ${size}` : size})
      </summary>
      <pre
        ref={logRef}
        class="ws-output__log"
        role="log"
        aria-live="off"
        aria-label={label}
        tabIndex={0}
        onScroll={(e) => {
          const log = e.currentTarget;
          follow.current = log.scrollHeight - log.scrollTop - log.clientHeight < FOLLOW_SLACK_PX;
        }}
      >
        {output.lines.join("\n")}
      </pre>
    </details>
  );
}
