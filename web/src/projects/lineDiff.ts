// A line diff for reviewing a code job's change set: what accepting it would do to a file.
// Longest common subsequence on the lines between the common head and tail, which keeps the
// table small for the usual change (a few lines in a file); above `maxCells` it gives up and
// the caller shows the new text whole.

export interface DiffLine {
  op: "same" | "add" | "del";
  text: string;
  /** Line numbers (1-based) in the old and the new text; null where the line is not in it. */
  old: number | null;
  new: number | null;
}

export interface Hunk {
  lines: DiffLine[];
}

function lines(text: string): string[] {
  if (text === "") return [];
  const all = text.split(/\r\n|\n/);
  // A final newline ends the last line rather than starting an empty one.
  if (all.at(-1) === "") all.pop();
  return all;
}

/** The diff from `before` to `after`, line by line; `null` when it would take too much work. */
export function lineDiff(before: string, after: string, maxCells = 1_000_000): DiffLine[] | null {
  const a = lines(before);
  const b = lines(after);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head += 1;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail += 1;
  const n = a.length - head - tail;
  const m = b.length - head - tail;
  if (n * m > maxCells) return null;

  // lcs[i * (m + 1) + j]: the longest common subsequence of a[head+i..] and b[head+j..] (middles).
  const width = m + 1;
  const lcs = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      lcs[i * width + j] =
        a[head + i] === b[head + j] ? lcs[(i + 1) * width + j + 1]! + 1 : Math.max(lcs[(i + 1) * width + j]!, lcs[i * width + j + 1]!);
    }
  }

  const out: DiffLine[] = [];
  let oldNo = 1;
  let newNo = 1;
  const same = (text: string) => out.push({ op: "same", text, old: oldNo++, new: newNo++ });
  const del = (text: string) => out.push({ op: "del", text, old: oldNo++, new: null });
  const add = (text: string) => out.push({ op: "add", text, old: null, new: newNo++ });
  for (let k = 0; k < head; k += 1) same(a[k]!);
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[head + i] === b[head + j]) {
      same(a[head + i]!);
      i += 1;
      j += 1;
    } else if (i < n && (j === m || lcs[(i + 1) * width + j]! >= lcs[i * width + j + 1]!)) {
      // Removed lines before added ones, as unified diffs show them.
      del(a[head + i]!);
      i += 1;
    } else {
      add(b[head + j]!);
      j += 1;
    }
  }
  for (let k = a.length - tail; k < a.length; k += 1) same(a[k]!);
  return out;
}

/**
 * The changed lines with `context` unchanged lines around them, as hunks; runs of unchanged
 * lines longer than that between changes split hunks. No changes: no hunks.
 */
export function hunks(diff: DiffLine[], context = 3): Hunk[] {
  const keep = new Array<boolean>(diff.length).fill(false);
  diff.forEach((line, index) => {
    if (line.op === "same") return;
    for (let k = Math.max(0, index - context); k <= Math.min(diff.length - 1, index + context); k += 1) keep[k] = true;
  });
  const out: Hunk[] = [];
  let current: DiffLine[] | null = null;
  diff.forEach((line, index) => {
    if (!keep[index]) {
      current = null;
      return;
    }
    if (!current) {
      current = [];
      out.push({ lines: current });
    }
    current.push(line);
  });
  return out;
}
