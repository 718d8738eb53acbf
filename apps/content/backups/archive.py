"""The archive's layout and manifest: file checksums, the format version, reading and checking.

An archive is a folder (or a tar of one) with ``manifest.json`` at its top; every other file it
holds is listed in the manifest with its size and SHA-256, and nothing is restored before all of
them match.
"""

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

FORMAT = "streamgate-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MEDIA_DIR = "media"
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class ArchivedFile:
    path: str  # relative to the archive, POSIX
    size: int
    sha256: str
    headers: dict[str, str] | None = None  # S3 objects: ContentType, CacheControl

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.headers:
            entry["headers"] = self.headers
        return entry


def safe_relative(path: str) -> str:
    """``path`` if it is a plain relative POSIX path inside the archive, else BackupError."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise BackupError(f"Unsafe path {path!r} in the backup; refusing it.")
    return path


def copy_hashing(source: BinaryIO, target: Path) -> tuple[int, str]:
    """Copy ``source`` into a new file ``target``; returns (size, SHA-256 hex)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with target.open("xb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_write(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def manifest_read(folder: Path) -> dict[str, Any]:
    """The folder's manifest, checked for its format and version (not yet its files)."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder} has no {MANIFEST}: it is not a StreamGate backup.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BackupError(f"{path} is damaged ({error}); restore from another copy.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a StreamGate backup manifest.")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BackupError(
            f"This backup has format version {version!r}; this code reads version "
            f"{FORMAT_VERSION}. Restore it with the StreamGate release that made it "
            f"({manifest.get('app_release', 'unknown')})."
        )
    return manifest


def files_of(manifest: dict[str, Any]) -> list[ArchivedFile]:
    try:
        return [
            ArchivedFile(
                path=safe_relative(entry["path"]),
                size=int(entry["size"]),
                sha256=str(entry["sha256"]),
                headers=entry.get("headers"),
            )
            for entry in manifest["files"]
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise BackupError(f"The manifest's file list is damaged ({error!r}).") from None


def files_verify(folder: Path, files: list[ArchivedFile]) -> None:
    """BackupError naming the first file that is missing, of another size or another SHA-256."""
    for entry in files:
        path = folder / entry.path
        if not path.is_file():
            raise BackupError(f"The backup is incomplete: {entry.path} is missing.")
        size = path.stat().st_size
        if size != entry.size:
            raise BackupError(
                f"The backup is damaged: {entry.path} has {size} bytes, the manifest says "
                f"{entry.size}. Restore from another copy."
            )
        actual = file_sha256(path)
        if actual != entry.sha256:
            raise BackupError(
                f"The backup is damaged: {entry.path} has SHA-256 {actual}, the manifest says "
                f"{entry.sha256}. Restore from another copy."
            )


def tar_write(folder: Path, target: Path) -> None:
    """``folder`` as one uncompressed tar (media is compressed already) named ``target``."""
    with tarfile.open(target, "x") as archive:
        archive.add(folder, arcname=folder.name)


def tar_extract(tar_path: Path, into: Path) -> Path:
    """Extract ``tar_path`` into ``into`` (no links, devices or paths outside it: tarfile's
    "data" filter); returns the folder holding the manifest."""
    try:
        with tarfile.open(tar_path) as archive:
            archive.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise BackupError(f"Cannot read {tar_path} as a tar file: {error}") from None
    found = [path.parent for path in _manifests(into)]
    if len(found) != 1:
        raise BackupError(f"{tar_path} holds {len(found)} backup manifests, not one.")
    return found[0]


def _manifests(folder: Path) -> Iterator[Path]:
    yield from (
        path for path in (folder / MANIFEST, *folder.glob(f"*/{MANIFEST}")) if path.is_file()
    )
