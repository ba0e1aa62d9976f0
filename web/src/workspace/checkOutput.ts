// The live output of a running check (an `image` check's build and run, one `check_output`
// event a line), as the Check panel keeps it: plain text, only the last lines, per check.

/** Lines kept per check: a build may send a few hundred; the end is what explains a failure. */
export const MAX_OUTPUT_LINES = 200;

export interface CheckOutput {
  index: number;
  code: string;
  /** The check's kind from `check_started` (`image`, …), "" when not seen. */
  kind: string;
  lines: string[];
  /** Lines no longer kept (older than the last `MAX_OUTPUT_LINES`). */
  dropped: number;
  running: boolean;
}

// CSI sequences (colours, cursor moves), OSC ones (window titles, links), other escapes, and
// the remaining control characters but tab: the server sends a build tool's own output, which
// may carry them.
const CSI = /\x1b\[[0-?]*[ -/]*[@-~]/g;
const OSC = /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g;
const ESCAPE = /\x1b[ -/]*[0-~]?/g;
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;

/** A line as text to show: escapes removed, and of a progress line redrawn with `\r` its last state. */
export function plainLine(line: string): string {
  const redrawn = line.split("\r").filter((part) => part !== "");
  return (redrawn.at(-1) ?? "").replace(CSI, "").replace(OSC, "").replace(ESCAPE, "").replace(CONTROL, "").replace(/\n/g, " ");
}

/** `outputs` with `line` added to check `index`'s output (made, running, on its first line). */
export function appendLine(
  outputs: readonly CheckOutput[],
  event: { index: number; code: string; line: string },
  kind = "",
  max = MAX_OUTPUT_LINES,
): CheckOutput[] {
  const at = outputs.findIndex((o) => o.index === event.index);
  const current: CheckOutput = at === -1 ? { index: event.index, code: event.code, kind, lines: [], dropped: 0, running: true } : outputs[at]!;
  const lines = [...current.lines, plainLine(event.line)];
  const excess = Math.max(0, lines.length - max);
  const next: CheckOutput = { ...current, lines: excess ? lines.slice(excess) : lines, dropped: current.dropped + excess };
  if (at === -1) return [...outputs, next].sort((a, b) => a.index - b.index);
  return outputs.map((o, i) => (i === at ? next : o));
}

/** `outputs` with check `index` (or, without an index, every check) no longer running. */
export function finishOutput(outputs: readonly CheckOutput[], index?: number): CheckOutput[] {
  return outputs.map((o) => (o.running && (index === undefined || o.index === index) ? { ...o, running: false } : o));
}
