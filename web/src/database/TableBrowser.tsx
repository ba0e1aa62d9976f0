// The database's tables and views (name, kind, rows); choosing one shows its columns and its
// rows a page at a time. The page shown stays while the next one loads, so paging does not
// jump; the tables are read again after a write (new `tables`), and so is the page shown.
import { useState } from "preact/hooks";
import { database, type RowsPage, type TableView } from "../api/database";
import { LoadStatus, useLoad } from "../components/LoadStatus";
import { errorMessage } from "../pages/CatalogPage";
import { clampOffset, pageAt, PAGE_SIZE, rangeText } from "./paging";
import { ResultGrid } from "./ResultGrid";

export function TableBrowser({ tables }: { tables: TableView[] }) {
  const [selected, setSelected] = useState<string | null>(null);
  // A table dropped meanwhile is no longer chosen.
  const table = tables.find((t) => t.name === selected) ?? null;

  return (
    <div class={tables.length === 0 ? "db-browser db-browser--empty" : "db-browser"}>
      <section class="panel" aria-labelledby="tables-heading">
        <h2 id="tables-heading">Tables</h2>
        {tables.length === 0 ? (
          <p class="hint">
            No tables yet. Make one in the SQL console below (in write mode), e.g. <code>CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)</code>, or
            let an app make its own.
          </p>
        ) : (
          <div class="table-wrap">
            <table class="table db-tables" aria-label="Tables">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Kind</th>
                  <th scope="col" class="db-num">
                    Rows
                  </th>
                </tr>
              </thead>
              <tbody>
                {tables.map((t) => (
                  <tr key={t.name} class={t.name === table?.name ? "db-tables__chosen" : undefined}>
                    <th scope="row">
                      <button type="button" class="db-pick" aria-pressed={t.name === table?.name} onClick={() => setSelected(t.name)}>
                        {t.name}
                      </button>
                    </th>
                    <td>{t.kind}</td>
                    <td class="db-num">{t.rows ?? <span class="hint">not counted</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {table ? (
        <TableRows key={table.name} table={table} />
      ) : tables.length > 0 ? (
        <p class="hint db-browser__pick">Choose a table to see its columns and rows.</p>
      ) : null}
    </div>
  );
}

function TableRows({ table }: { table: TableView }) {
  const [offset, setOffset] = useState(0);
  const [reload, setReload] = useState(0);
  // Rows deleted since the page was chosen: the last page there is now (views are not counted).
  const at = typeof table.rows === "number" ? clampOffset(offset, table.rows) : offset;
  const [load] = useLoad((signal) => database.rows(table.name, at, PAGE_SIZE, signal), [table, at, reload], errorMessage);
  const headingId = "table-rows-heading";

  return (
    <section class="panel db-table" aria-labelledby={headingId}>
      <h2 id={headingId}>
        {table.name} <span class="hint">{table.kind}</span>
      </h2>
      <div class="table-wrap">
        <table class="table db-columns" aria-label={`Columns of ${table.name}`}>
          <thead>
            <tr>
              <th scope="col">Column</th>
              <th scope="col">Type</th>
              <th scope="col">Primary key</th>
              <th scope="col">Not null</th>
            </tr>
          </thead>
          <tbody>
            {table.columns.map((c) => (
              <tr key={c.name}>
                <th scope="row">{c.name}</th>
                <td>{c.type ? <code>{c.type}</code> : <span class="hint">none declared</span>}</td>
                <td>{c.primary_key ? "yes" : <span class="hint">no</span>}</td>
                <td>{c.not_null ? "yes" : <span class="hint">no</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Rows</h3>
      <LoadStatus load={load} loading="Loading rows…" onRetry={() => setReload((n) => n + 1)} />
      {load.state === "ready" ? <Rows name={table.name} page={load} busy={load.offset !== at} onOffset={setOffset} /> : null}
    </section>
  );
}

interface RowsProps {
  name: string;
  page: RowsPage;
  busy: boolean;
  onOffset: (offset: number) => void;
}

function Rows({ name, page, busy, onOffset }: RowsProps) {
  const at = pageAt(page.offset, page.rows.length, page.total);
  // Not `disabled` at either end, so focus stays on the button that was pressed.
  const go = (offset: number | null) => {
    if (offset !== null && !busy) onOffset(offset);
  };
  return (
    <>
      <div class="db-pager">
        <p class="db-pager__range" role="status">
          {rangeText(at)}
          {at.pages > 1 ? <span class="hint"> · page {at.number} of {at.pages}</span> : null}
        </p>
        {at.pages > 1 ? (
          <nav class="db-pager__nav" aria-label={`Pages of ${name}`}>
            <button type="button" class="button button--small" aria-disabled={at.previous === null || busy} onClick={() => go(at.previous)}>
              Previous<span class="visually-hidden"> page</span>
            </button>
            <button type="button" class="button button--small" aria-disabled={at.next === null || busy} onClick={() => go(at.next)}>
              Next<span class="visually-hidden"> page</span>
            </button>
          </nav>
        ) : null}
      </div>
      {page.rows.length > 0 ? <ResultGrid label={`Rows of ${name}`} columns={page.columns} rows={page.rows} first={at.first} busy={busy} /> : null}
    </>
  );
}
