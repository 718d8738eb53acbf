"""Making and restoring backups (the package docstring says what is in one, and why this order).

Other apps add what the core cannot know through ``backup_check_register``: a check records
facts in the manifest when the backup is made, and at restore time says what the target stack
lacks to use them (apps.transcode: the master keys that open the content keys).
"""

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from apps.content.backups.archive import (
    FORMAT,
    FORMAT_VERSION,
    ArchivedFile,
    BackupError,
    file_sha256,
    files_of,
    files_verify,
    manifest_read,
    manifest_write,
    tar_extract,
    tar_write,
)
from apps.content.backups.database import database_dump, database_restore, database_table_names
from apps.content.backups.media import media_dump, media_is_empty, media_restore, storage_kind
from apps.content.storage import StorageUnavailable

Say = Callable[[str], object]


@dataclass(frozen=True)
class BackupCheck:
    collect: Callable[[], Any]  # JSON facts about the source stack, kept in the manifest
    problems: Callable[[Any], list[str]]  # what the target stack lacks to use those facts


_checks: dict[str, BackupCheck] = {}


def backup_check_register(
    name: str, *, collect: Callable[[], Any], problems: Callable[[Any], list[str]]
) -> None:
    """Add a check under ``name`` (a second registration replaces the first)."""
    _checks[name] = BackupCheck(collect=collect, problems=problems)


def backup_create(*, destination: Path, tar: bool = False, say: Say = print) -> Path:
    """Write a backup of the database, then the media, to the new folder ``destination`` (and
    with ``tar`` to ``destination``.tar, the folder removed); returns what was written."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} exists and is not empty; name a new folder.")
    target = destination.with_name(destination.name + ".tar") if tar else destination
    if tar and target.exists():
        raise BackupError(f"{target} exists already; name a new one.")
    destination.mkdir(parents=True, exist_ok=True)
    started = datetime.now(tz=UTC)
    # The database first: every file its rows name is stored before the row is written.
    dump_name, database = database_dump(destination)
    files = [
        ArchivedFile(
            path=dump_name,
            size=(destination / dump_name).stat().st_size,
            sha256=file_sha256(destination / dump_name),
        )
    ]
    say(f"Database ({database['vendor']}): {files[0].size} bytes.")
    checks = {name: check.collect() for name, check in sorted(_checks.items())}
    try:
        media = media_dump(default_storage, destination, on_file=lambda entry: None)
    except StorageUnavailable as error:
        raise BackupError(f"Media storage could not be read: {error}") from error
    files += media
    say(f"Media: {len(media)} files, {sum(entry.size for entry in media)} bytes.")
    manifest_write(
        destination,
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": started.isoformat(),
            "finished_at": datetime.now(tz=UTC).isoformat(),
            "app_release": settings.STREAMGATE_RELEASE,
            "migrations": _applied_migrations(),
            "database": {**database, "file": dump_name},
            "storage": storage_kind(default_storage),
            "checks": checks,
            "files": [entry.as_json() for entry in files],
        },
    )
    if tar:
        tar_write(destination, target)
        shutil.rmtree(destination)
    return target


def backup_restore(
    *, source: Path, force: bool = False, ignore_checks: bool = False, say: Say = print
) -> dict[str, Any]:
    """Check the backup at ``source`` (folder or tar) whole, then load its database and its
    media into this stack; returns its manifest. The caller runs ``migrate`` afterwards.

    Refuses, before writing anything: a damaged or incomplete backup, one made by newer code
    (migrations this code does not have), a database of another engine, a target database that
    has tables or storage that has files (unless ``force``), and a stack that lacks what a
    registered check needs (the master keys; unless ``ignore_checks``)."""
    if not source.exists():
        raise BackupError(f"{source} does not exist.")
    with tempfile.TemporaryDirectory(prefix="streamgate-restore-") as scratch:
        folder = tar_extract(source, Path(scratch)) if source.is_file() else source
        manifest = manifest_read(folder)
        files = files_of(manifest)
        files_verify(folder, files)
        say(f"Backup of {manifest['created_at']}: {len(files)} files, checksums match.")
        _refuse_unknown_migrations(manifest.get("migrations", {}))
        database = manifest["database"]
        if database["vendor"] != connection.vendor:
            raise BackupError(
                f"This backup holds a {database['vendor']} database and this stack runs "
                f"{connection.vendor}; restore it into a stack of the same kind."
            )
        problems = [
            problem
            for name, facts in sorted(manifest.get("checks", {}).items())
            if name in _checks
            for problem in _checks[name].problems(facts)
        ]
        if problems and not ignore_checks:
            raise BackupError(
                "This stack could not use the restored content: "
                + " ".join(problems)
                + " (--ignore-checks restores anyway.)"
            )
        try:
            if not force and not media_is_empty(default_storage):
                raise BackupError(
                    "The target media storage is not empty; restore into empty storage, or "
                    "pass --force to write over files of the same names."
                )
            tables = database_table_names()
            if tables and not force:
                raise BackupError(
                    f"The target database is not empty ({len(tables)} tables, e.g. "
                    f"{sorted(tables)[0]}); restore into an empty database (do not run migrate "
                    f"first), or pass --force to replace everything in it."
                )
            database_restore(
                folder / database["file"], vendor=database["vendor"], replace=bool(tables)
            )
            say("Database restored.")
            media_restore(default_storage, folder, files, on_file=lambda entry: None)
        except StorageUnavailable as error:
            raise BackupError(f"Media storage failed: {error}") from error
        say(f"Media restored: {sum(1 for f in files if f.path != database['file'])} files.")
        return manifest


def _applied_migrations() -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        applied.setdefault(app, []).append(name)
    return applied


def _refuse_unknown_migrations(applied: dict[str, list[str]]) -> None:
    known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    unknown = [
        f"{app}.{name}"
        for app, names in applied.items()
        for name in names
        if (app, name) not in known
    ]
    if unknown:
        raise BackupError(
            f"This backup was made by newer code: migration {unknown[0]} (and "
            f"{len(unknown) - 1} more) is unknown here. Restore it with that release or newer."
        )
