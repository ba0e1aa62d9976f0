# The SQLite viewer, run by sandpit in a sandbox of its own with the user's database directory
# at /data: the server never opens a file the user's apps can write. One request (JSON) on
# stdin, one answer (JSON) on stdout: {"ok": …} or {"error": {"code", "message"}}.
import json
import sqlite3
import sys
import time

PATH = "/data/app.sqlite"


def answer(obj):
    json.dump(obj, sys.stdout, allow_nan=False, default=str)
    sys.exit(0)


def fail(code, message):
    answer({"error": {"code": code, "message": message}})


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def main():
    req = json.load(sys.stdin)
    max_cell = int(req["max_cell_chars"])
    max_rows = int(req["max_rows"])
    write = bool(req.get("write"))

    def cell(v):
        if isinstance(v, bytes):
            shown = v[: max_cell // 2]
            return {"bytes": len(v), "hex": shown.hex() + ("…" if len(shown) < len(v) else "")}
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return str(v)
        if isinstance(v, str) and len(v) > max_cell:
            return v[:max_cell] + "…"
        return v

    def columns_of(cursor):
        return [{"name": d[0], "type": "", "primary_key": False, "not_null": False} for d in cursor.description]

    con = sqlite3.connect(f"file:{PATH}?mode={'rw' if write else 'ro'}", uri=True, timeout=2, isolation_level=None)
    deadline = time.monotonic() + req["timeout_ms"] / 1000
    con.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    con.execute("PRAGMA trusted_schema = OFF")
    if not write:
        con.execute("PRAGMA query_only = ON")

    def table_columns(name):
        return [
            {"name": c[1], "type": c[2] or "", "primary_key": c[5] > 0, "not_null": bool(c[3])}
            for c in con.execute(f"PRAGMA table_info({quote(name)})")
        ]

    def tables(only=None):
        found = con.execute(
            "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' AND (?1 IS NULL OR name = ?1) ORDER BY name",
            (only,),
        ).fetchall()
        return {
            name: {
                "name": name,
                "kind": kind,
                "rows": con.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0] if kind == "table" else None,
                "columns": table_columns(name),
            }
            for name, kind in found
        }

    op = req["op"]
    try:
        if op == "tables":
            answer({"ok": {"tables": list(tables().values())}})
        if op == "rows":
            table = tables(req["table"]).get(req["table"])
            if table is None:
                fail("no_such_table", f"there is no table or view {req['table']!r}")
            q = quote(table["name"])
            total = table["rows"] if table["rows"] is not None else con.execute(f"SELECT count(*) FROM {q}").fetchone()[0]
            order = " ORDER BY rowid" if table["kind"] == "table" else ""
            try:
                cur = con.execute(f"SELECT * FROM {q}{order} LIMIT ? OFFSET ?", (req["limit"], req["offset"]))
            except sqlite3.OperationalError:
                # A table without rowid keeps its own order.
                cur = con.execute(f"SELECT * FROM {q} LIMIT ? OFFSET ?", (req["limit"], req["offset"]))
            rows = [[cell(v) for v in r] for r in cur.fetchall()]
            answer({"ok": {"columns": table["columns"], "rows": rows, "offset": req["offset"], "limit": req["limit"], "total": total}})
        if op == "query":
            # The connection's count of changed rows, not the cursor's: that one counts only
            # statements that begin with INSERT, UPDATE, DELETE or REPLACE (not WITH …).
            before = con.total_changes
            cur = con.execute(req["sql"])
            if cur.description is None:
                answer({"ok": {"columns": [], "rows": [], "truncated": False, "rows_affected": con.total_changes - before}})
            rows = cur.fetchmany(max_rows + 1)
            answer({
                "ok": {
                    "columns": columns_of(cur),
                    "rows": [[cell(v) for v in r] for r in rows[:max_rows]],
                    "truncated": len(rows) > max_rows,
                    "rows_affected": None,
                }
            })
        fail("bad_request", f"unknown op {op!r}")
    except sqlite3.OperationalError as e:
        text = str(e)
        if "readonly" in text or "read-only" in text:
            fail("read_only", "this statement writes to the database: run it in write mode")
        if text == "interrupted":
            fail("statement_timeout", f"the statement ran longer than {req['timeout_ms']} ms and was stopped")
        fail("sql_error", text)
    except (sqlite3.DatabaseError, sqlite3.Warning, sqlite3.ProgrammingError) as e:
        fail("sql_error", str(e))
    except (OverflowError, ValueError) as e:
        fail("sql_error", str(e))


main()
