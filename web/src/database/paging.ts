// A table's rows a page at a time, without the DOM: which rows a page holds, whether there is
// a page before or after it, and what it says ("rows 51–60 of 60").

/** Rows on one page of the viewer (the server sends at most `user_databases.max_rows`, 200). */
export const PAGE_SIZE = 50;

export interface Page {
  /** 1-based number of the first row shown, and of the last; 0 and 0 when none are. */
  first: number;
  last: number;
  total: number;
  /** The offsets of the pages before and after, `null` at either end. */
  previous: number | null;
  next: number | null;
  /** 1-based, of `pages`; an empty table has one, empty, page. */
  number: number;
  pages: number;
}

/** The page at `offset` holding `shown` rows of `total`, pages of `size`. */
export function pageAt(offset: number, shown: number, total: number, size = PAGE_SIZE): Page {
  const first = shown > 0 ? offset + 1 : 0;
  const last = shown > 0 ? offset + shown : 0;
  return {
    first,
    last,
    total,
    previous: offset > 0 ? Math.max(0, offset - size) : null,
    next: offset + size < total ? offset + size : null,
    number: Math.floor(offset / size) + 1,
    pages: Math.max(1, Math.ceil(total / size)),
  };
}

/**
 * Where to read from when the table now has `total` rows: `offset` while it is within them,
 * else the last page's start (rows were deleted meanwhile), on a page boundary.
 */
export function clampOffset(offset: number, total: number, size = PAGE_SIZE): number {
  if (total <= 0) return 0;
  const start = Math.floor(Math.max(0, offset) / size) * size;
  return Math.min(start, Math.floor((total - 1) / size) * size);
}

/** "Rows 51–60 of 60", "Row 1 of 1", "No rows". */
export function rangeText(page: Page): string {
  if (page.last === 0) return page.total === 0 ? "No rows" : `No rows here, of ${count(page.total, "row")}`;
  if (page.first === page.last) return `Row ${page.first} of ${page.total}`;
  return `Rows ${page.first}–${page.last} of ${page.total}`;
}

/** "1 row", "60 rows". */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
