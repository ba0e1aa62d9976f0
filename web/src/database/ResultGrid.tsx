// Rows as a table: a table's page and a console answer look the same. Each cell is a text
// node (formatCell), so whatever a row holds, markup included, shows as the text it is.
import type { Cell, Column } from "../api/database";
import { formatCell } from "./cells";

interface Props {
  label: string;
  columns: Column[];
  rows: Cell[][];
  /** The number of the first row (a page's offset + 1). */
  first?: number;
  busy?: boolean;
}

export function ResultGrid({ label, columns, rows, first = 1, busy = false }: Props) {
  return (
    <div class="table-wrap db-grid-wrap">
      <table class="table db-grid" aria-label={label} aria-busy={busy}>
        <thead>
          <tr>
            <th scope="col" class="db-grid__n">
              <span aria-hidden="true">#</span>
              <span class="visually-hidden">Row</span>
            </th>
            {columns.map((c, i) => (
              <th key={i} scope="col">
                {c.name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, r) => (
            <tr key={first + r}>
              <th scope="row" class="db-grid__n">
                {first + r}
              </th>
              {columns.map((_, i) => (
                <CellView key={i} value={row[i]} />
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function CellView({ value }: { value: Cell | undefined }) {
  const cell = formatCell(value);
  if (cell.kind === "binary") {
    return (
      <td class="db-cell db-cell--binary">
        <span class="db-cell__note">{cell.note}</span> <code>{cell.text}</code>
      </td>
    );
  }
  return <td class={`db-cell db-cell--${cell.kind}`}>{cell.text}</td>;
}
