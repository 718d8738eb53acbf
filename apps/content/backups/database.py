"""The database half of a backup: PostgreSQL through pg_dump/pg_restore, SQLite through its
online backup API. Both copy the default database as one consistent snapshot."""

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any, cast

from django.db import connection

from apps.content.backups.archive import BackupError

PG_DUMP_FILE = "database.pgdump"
SQLITE_FILE = "database.sqlite3"
# libpq's environment variables for the connection settings a DATABASE_URL may carry; passing
# them this way keeps the password off the command line (ps shows arguments, not environments).
_LIBPQ_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}


def database_vendor() -> str:
    return connection.vendor


def database_dump(folder: Path) -> tuple[str, dict[str, Any]]:
    """Dump the default database into ``folder``; (file name, facts for the manifest)."""
    if connection.vendor == "postgresql":
        return _pg_dump(folder / PG_DUMP_FILE)
    if connection.vendor == "sqlite":
        return _sqlite_dump(folder / SQLITE_FILE)
    raise BackupError(f"Backups support PostgreSQL and SQLite, not {connection.vendor}.")


def database_table_names() -> list[str]:
    with connection.cursor() as cursor:
        return connection.introspection.table_names(cursor)


def database_restore(path: Path, *, vendor: str, replace: bool) -> None:
    """Load the dump at ``path`` into the default database. ``replace``: drop the tables it
    already has first (the caller has made sure that is wanted, and that the engines match)."""
    if vendor == "postgresql":
        _pg_restore(path, replace=replace)
    else:
        _sqlite_restore(path)


# --- PostgreSQL ----------------------------------------------------------------------------------


def _pg_env() -> dict[str, str]:
    settings_dict = connection.settings_dict
    env = dict(os.environ)
    for key, variable in (
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
        ("NAME", "PGDATABASE"),
    ):
        if settings_dict.get(key):
            env[variable] = str(settings_dict[key])
    for option, variable in _LIBPQ_OPTIONS.items():
        if settings_dict.get("OPTIONS", {}).get(option):
            env[variable] = str(settings_dict["OPTIONS"][option])
    return env


def _pg_tool(name: str) -> tuple[str, int]:
    """(path, major version) of a PostgreSQL client program no older than the server."""
    server_major = connection.pg_version // 10000  # type: ignore[attr-defined]
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not installed; install the PostgreSQL {server_major} client programs "
            f"(Debian: postgresql-client-{server_major})."
        )
    output = subprocess.run(  # noqa: S603 - a program found on PATH, fixed arguments
        [path, "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", output)
    major = int(match.group(1)) if match else 0
    if major < server_major:
        raise BackupError(
            f"{path} is version {major or output.strip()!r} and the server {server_major}: "
            f"{name} must be as new as the server; install postgresql-client-{server_major}."
        )
    return path, major


def _pg_run(args: list[str], what: str) -> None:
    connection.ensure_connection()
    result = subprocess.run(  # noqa: S603 - our own arguments, no shell
        args, env=_pg_env(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BackupError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def _pg_dump(target: Path) -> tuple[str, dict[str, Any]]:
    connection.ensure_connection()
    pg_dump, major = _pg_tool("pg_dump")
    _pg_run(
        [pg_dump, "--format=custom", "--no-owner", "--no-privileges", "--file", str(target)],
        "pg_dump",
    )
    return target.name, {
        "vendor": "postgresql",
        "server_version": connection.pg_version,  # type: ignore[attr-defined]
        "dump_tool_major": major,
    }


def _pg_restore(path: Path, *, replace: bool) -> None:
    """pg_restore writes the dump as SQL, psql runs it in one transaction, after dropping the
    tables the database has when ``replace``: a restore that fails half-way (a dump the server
    refuses) leaves the database as it was, its old tables included."""
    connection.ensure_connection()
    pg_restore, _ = _pg_tool("pg_restore")
    psql, _ = _pg_tool("psql")
    prologue = b""
    if replace:
        tables = database_table_names()
        if tables:
            quoted = ", ".join(connection.ops.quote_name(name) for name in tables)
            prologue = f"DROP TABLE IF EXISTS {quoted} CASCADE;\n".encode()
    connection.close()  # ours would hold no locks, but nothing of it is needed any more
    env = _pg_env()
    with tempfile.TemporaryFile() as restore_errors, tempfile.TemporaryFile() as psql_errors:
        loader = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
            [
                psql,
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set",
                "ON_ERROR_STOP=1",
                "--dbname",
                str(connection.settings_dict["NAME"]),
                "--file",
                "-",
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_errors,
        )
        # --clean --if-exists: also drop the functions and triggers the tables' drop left.
        script = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
            [
                pg_restore,
                "--no-owner",
                "--no-privileges",
                *(["--clean", "--if-exists"] if replace else []),
                "--file",
                "-",
                str(path),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=restore_errors,
        )
        sql_in, sql_out = cast(IO[bytes], loader.stdin), cast(IO[bytes], script.stdout)
        try:
            sql_in.write(prologue)
            shutil.copyfileobj(sql_out, sql_in)
        except BrokenPipeError:
            pass  # psql stopped at an error: its own message says which
        if script.wait() != 0 or (loader.poll() is not None and loader.returncode != 0):
            # psql has not seen the end of its input, so it has not committed: killed, its
            # transaction is rolled back by the server.
            loader.kill()
            loader.wait()
            restore_errors.seek(0)
            psql_errors.seek(0)
            detail = (restore_errors.read() or psql_errors.read()).decode(errors="replace")
            raise BackupError(f"pg_restore failed: {detail.strip()[-2000:]}")
        sql_in.close()
        if loader.wait() != 0:
            psql_errors.seek(0)
            detail = psql_errors.read().decode(errors="replace")
            raise BackupError(f"pg_restore failed (psql): {detail.strip()[-2000:]}")


# --- SQLite --------------------------------------------------------------------------------------


def _sqlite_dump(target: Path) -> tuple[str, dict[str, Any]]:
    source = sqlite3.connect(f"file:{connection.settings_dict['NAME']}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # pages copied under SQLite's own locking: a consistent snapshot
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file in the archive
    finally:
        copy.close()
        source.close()
    return target.name, {"vendor": "sqlite", "server_version": sqlite3.sqlite_version}


def _sqlite_restore(path: Path) -> None:
    connection.close()
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = sqlite3.connect(connection.settings_dict["NAME"], timeout=20)
    try:
        source.backup(target)  # replaces every page of the target, whatever it held
    finally:
        target.close()
        source.close()
