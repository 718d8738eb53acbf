"""What the soak (tests/benchmarks/soak.py) writes down before tearing the stack down, when a goal
failed or the drain ended with work unfinished: what PostgreSQL's sessions are doing and who
blocks whom, and where every process of the stack is (py-spy, an installed tool: a stack that
hangs in C, in psycopg's wait or a lock, shows where; nothing in-process could)."""

import subprocess
from pathlib import Path

from tests.support.processes import BIN

SESSIONS = """
SELECT pid, application_name, client_port, backend_start, xact_start, query_start, state_change,
       state, wait_event_type, wait_event, backend_xid, backend_xmin,
       pg_blocking_pids(pid) AS blocked_by, left(query, 400) AS query
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
ORDER BY xact_start NULLS LAST, pid
"""
BLOCKED = """
SELECT blocked.pid, blocked.state, blocked.xact_start, blocked.wait_event_type,
       left(blocked.query, 300) AS query, blocking.pid AS blocking_pid,
       blocking.state AS blocking_state, blocking.xact_start AS blocking_xact_start,
       blocking.state_change AS blocking_state_change, left(blocking.query, 300) AS blocking_query
FROM pg_stat_activity blocked
JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS b(pid) ON true
JOIN pg_stat_activity blocking ON blocking.pid = b.pid
WHERE blocked.datname = current_database()
"""
LOCKS = """
SELECT l.pid, l.locktype, coalesce(l.relation::regclass::text, '') AS relation, l.page, l.tuple,
       l.transactionid, l.virtualxid, l.mode, l.granted, a.state, a.xact_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE a.datname = current_database() AND l.pid <> pg_backend_pid()
ORDER BY l.granted, l.pid
"""


def _table(title: str, columns: list[str], rows: list[tuple]) -> str:
    lines = [f"== {title}: {len(rows)}", " | ".join(columns)]
    lines += [" | ".join("" if v is None else str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n\n"


def database_state(dsn: str, path: Path) -> Path:
    """pg_stat_activity, blocked/blocking pairs and pg_locks of the soak's database, read over
    a direct connection (not through the proxies)."""
    import psycopg

    text = ""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            for title, sql in (
                ("sessions (pg_stat_activity)", SESSIONS),
                ("blocked by", BLOCKED),
                ("locks (pg_locks; ungranted first)", LOCKS),
            ):
                cursor = conn.execute(sql)
                columns = [c.name for c in cursor.description or []]
                text += _table(title, columns, cursor.fetchall())
    except psycopg.Error as error:
        text += f"could not read the database's state: {error!r}\n"
    path.write_text(text)
    return path


def stack_dumps(trees: dict[str, list[int]], folder: Path) -> list[Path]:
    """``py-spy dump`` of every process of each tree (name: pids), one file each."""
    written = []
    for name, pids in trees.items():
        for pid in pids:
            path = folder / f"py-spy-{name}-{pid}.txt"
            try:
                done = subprocess.run(
                    [str(BIN / "py-spy"), "dump", "--pid", str(pid), "--locals"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                path.write_text(done.stdout + done.stderr)
            except (OSError, subprocess.TimeoutExpired) as error:
                path.write_text(f"py-spy dump failed: {error!r}\n")
            written.append(path)
    return written


def capture(dsn: str, trees: dict[str, list[int]], folder: Path, why: str) -> list[Path]:
    """Both, into ``folder``; the files written."""
    print(f"\n== forensics ({why}): capturing before the stack stops", flush=True)
    files = [database_state(dsn, folder / "pg-activity.txt")]
    files += stack_dumps(trees, folder)
    return files
