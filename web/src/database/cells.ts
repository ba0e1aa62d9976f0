// How the viewer shows what the database answers, without the DOM: a cell as text of a kind
// (null and binary look unlike any text a table could hold), a file's size, what a console
// answer amounts to, the database's own words for a statement it refused, what deleting loses
// and what a rotation did. All of it is text for text nodes: a cell is never markup.
import type { Cell, QueryResult, TableView } from "../api/database";
import { count } from "./paging.js";

export type CellKind = "null" | "number" | "boolean" | "text" | "binary" | "json";

export interface ShownCell {
  kind: CellKind;
  text: string;
  /** Binary: its size, and how much of it the hex shows when not all. */
  note?: string;
}

function isBinary(value: object): value is { bytes: number; hex: string } {
  const { bytes, hex } = value as { bytes?: unknown; hex?: unknown };
  return typeof bytes === "number" && typeof hex === "string" && Object.keys(value).length === 2;
}

export function formatCell(value: Cell | undefined): ShownCell {
  if (value === null || value === undefined) return { kind: "null", text: "NULL" };
  if (typeof value === "number") return { kind: "number", text: String(value) };
  if (typeof value === "boolean") return { kind: "boolean", text: String(value) };
  if (typeof value === "string") return { kind: "text", text: value };
  if (isBinary(value)) {
    // The server sends the first bytes of a long value, marked with `…`.
    const cut = value.hex.endsWith("…");
    const shown = cut ? (value.hex.length - 1) / 2 : value.bytes;
    const size = formatBytes(value.bytes);
    return { kind: "binary", text: value.hex, note: cut ? `${size}, the first ${formatBytes(shown)} shown` : size };
  }
  // A value of a kind this page does not know (a PostgreSQL array or JSON, say): as JSON.
  return { kind: "json", text: JSON.stringify(value) };
}

/** "0 bytes", "1 byte", "8 KiB", "1.5 MiB". */
export function formatBytes(n: number): string {
  if (n < 1024) return count(n, "byte");
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1).replace(/\.0$/, "")} ${units[unit]}`;
}

/** What a console answer amounts to: "3 rows.", "Done: 60 rows changed.". */
export function summarize(result: QueryResult): string {
  if (result.columns.length > 0) {
    if (result.truncated) return `The first ${count(result.rows.length, "row")}: there are more. Narrow it with WHERE or LIMIT.`;
    return result.rows.length === 0 ? "No rows." : `${count(result.rows.length, "row")}.`;
  }
  const changed = result.rows_affected;
  if (changed === null || changed === undefined) return "Done.";
  return `Done: ${changed === 0 ? "no rows" : count(changed, "row")} changed.`;
}

/** The database's message for a statement it refused, without the API's field prefix (`sql: `). */
export function databaseSays(message: string): string {
  return message.replace(/^sql: /, "");
}

/** Tables named in "what is lost" before the rest are only counted. */
const NAMED = 5;

/**
 * What deleting loses, for the confirm: "You lose notes (60 rows) and the view recent.";
 * `null` when the tables are not known (they could not be read).
 */
export function whatIsLost(tables: TableView[] | null): string {
  if (tables === null) return "You lose every table and row in it.";
  if (tables.length === 0) return "It holds no tables yet.";
  const named = tables.slice(0, NAMED).map((t) => (t.kind === "table" ? `${t.name} (${count(t.rows ?? 0, "row")})` : `the ${t.kind} ${t.name}`));
  const rest = tables.length - named.length;
  if (rest > 0) named.push(`${count(rest, "more table")}`);
  const list = named.length === 1 ? named[0] : `${named.slice(0, -1).join(", ")} and ${named.at(-1)}`;
  return `You lose ${list}.`;
}

/** What rotating the password did, given the redeploys it started (`undefined`: none said). */
export function rotatedText(redeploys: string[] | undefined): string {
  const n = redeploys?.length ?? 0;
  const said = "New password made: the old one no longer works.";
  if (n === 0) return said;
  if (n === 1) return `${said} Your running app is deployed again with it: it switches over once healthy.`;
  return `${said} Your ${n} running apps are deployed again with it: each switches over once healthy.`;
}
