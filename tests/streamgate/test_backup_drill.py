"""The backup drill of README "Backups", for real: a stack with a content encoded through the
real pipeline is backed up, restored into a fresh stack (new database, empty media), and the
restored content plays there. Also what `restore` refuses, and the PostgreSQL + S3 path.
"""

import base64
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import closing
from hashlib import sha256
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import av
import boto3
import psycopg
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.content.storage import storage_put_file
from tests.factories import ContentFactory
from tests.support.media import make_video
from tests.support.processes import ROOT, embedded_env, free_port, manage, web_server

# Kept in the secret store, never in the archive: both stacks are given the same one.
MASTER_KEYS = json.dumps({"m1": base64.b64encode(bytes(range(32))).decode()})


def manage_fails(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py args``, expecting it to fail; its stderr."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0, f"manage.py {' '.join(args)} succeeded:\n{result.stdout}"
    return result.stderr


def api(method: str, url: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as response:
        return response.read()


def frames_played(master_url: str) -> int:
    """Video frames decoded playing the HLS ``master_url`` as a player does: the master
    playlist, the first video variant's playlist, its key from the key URL the master defines
    (``{$sgkey}``), its init segment and every segment, decrypted (AES-128-CBC) and decoded."""
    master = fetch(master_url).decode()
    key_url = master.split('#EXT-X-DEFINE:NAME="sgkey",VALUE="', 1)[1].split('"', 1)[0]
    lines = master.splitlines()
    variant = lines[
        next(i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF")) + 1
    ]
    playlist_url = urljoin(master_url, variant)
    playlist = fetch(playlist_url).decode()
    key = b""
    stream = bytearray()
    iv = b""
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-MAP:URI="):
            stream += fetch(urljoin(playlist_url, line.split('"')[1]))
        elif line.startswith("#EXT-X-KEY:"):
            assert 'URI="{$sgkey}"' in line
            key = key or fetch(urljoin(master_url, key_url))
            iv = bytes.fromhex(line.split("IV=0x", 1)[1].split(",", 1)[0])
        elif line and not line.startswith("#"):
            decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
            padded = decryptor.update(fetch(urljoin(playlist_url, line))) + decryptor.finalize()
            unpadder = padding.PKCS7(128).unpadder()
            stream += unpadder.update(padded) + unpadder.finalize()
    with av.open(io.BytesIO(bytes(stream))) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    """A content ingested on one embedded stack (SQLite, local disk, as `make run`), backed up
    to a tar file; yields what the tests need about it."""
    root = tmp_path_factory.mktemp("drill")
    old = embedded_env(root / "old-var", MEDIA_MASTER_KEYS=MASTER_KEYS, MEDIA_MASTER_KEY_ID="m1")
    manage(old, "migrate", "--noinput")
    token = manage(old, "create_api_token", "maker", "--creator").strip()
    clip = make_video(root / "clip.mp4", seconds=2, size="320x240")
    manage(old, "ingest", str(clip), "--title", "Restored", "--owner", "maker")
    # An older schema than this code's: the restore must bring it up to date.
    manage(old, "migrate", "axes", "0009_add_session_hash", "--noinput")
    started = time.monotonic()
    archive = Path(manage(old, "backup", str(root / "backup"), "--tar").strip())
    backup_seconds = time.monotonic() - started
    return {
        "root": root,
        "archive": archive,
        "token": token,
        "backup_seconds": backup_seconds,
        "old_media": root / "old-var" / "media",
    }


def test_restored_into_a_fresh_stack_the_content_plays(drill, logs_dir):
    fresh = embedded_env(
        drill["root"] / "new-var", MEDIA_MASTER_KEYS=MASTER_KEYS, MEDIA_MASTER_KEY_ID="m1"
    )
    started = time.monotonic()
    manage(fresh, "restore", str(drill["archive"]))
    restore_seconds = time.monotonic() - started
    # Again over the restored stack, forced: SQLite's backup API replaces the whole file (the
    # content below plays from this second restore).
    manage(fresh, "restore", str(drill["archive"]), "--force")
    print(
        f"backup {drill['backup_seconds']:.1f} s, restore {restore_seconds:.1f} s, "
        f"{drill['archive'].stat().st_size} bytes"
    )

    # The backup's schema lacked the newest axes migration; restore ran migrate.
    with closing(sqlite3.connect(drill["root"] / "new-var" / "db.sqlite3")) as restored:
        applied = restored.execute("SELECT name FROM django_migrations WHERE app = 'axes'")
        assert "0010_accessattemptexpiration" in {name for (name,) in applied}
    with tarfile.open(drill["archive"]) as archive:
        [manifest] = [member for member in archive.getnames() if member.endswith("manifest.json")]
        migrations = json.load(archive.extractfile(manifest))["migrations"]
    assert migrations["axes"][-1] == "0009_add_session_hash"

    restored_media = drill["root"] / "new-var" / "media"
    old_files = sorted(
        p.relative_to(drill["old_media"]) for p in drill["old_media"].rglob("*") if p.is_file()
    )
    assert old_files
    print(f"{len(old_files)} media files")
    assert (
        sorted(p.relative_to(restored_media) for p in restored_media.rglob("*") if p.is_file())
        == old_files
    )

    with web_server(fresh, logs_dir / "web.log") as base:
        # The old stack's API token is in the restored database, and works here.
        status, page = api("GET", f"{base}/api/v1/contents/?status=ready", drill["token"])
        assert status == 200, page
        [content] = page["results"]
        assert content["title"] == "Restored"
        assert content["status"] == "ready"
        assert content["renditions"]
        status, grant = api(
            "POST", f"{base}/api/v1/contents/{content['id']}/playback/", drill["token"]
        )
        assert status == 200, grant
        hls_url = (
            grant["hls_url"] if grant["hls_url"].startswith("http") else base + grant["hls_url"]
        )
        assert frames_played(hls_url) >= 50  # 2 s at 25 fps, every frame decoded


def test_restore_refuses_a_stack_without_the_master_keys(drill):
    # No MEDIA_MASTER_KEYS: the master key would derive from this var/'s own secret key.
    keyless = embedded_env(drill["root"] / "keyless-var")
    error = manage_fails(keyless, "restore", str(drill["archive"]))
    assert "master key 'm1'" in error
    assert "MEDIA_MASTER_KEYS" in error
    # Nothing was written.
    assert not (drill["root"] / "keyless-var" / "media").exists() or not any(
        (drill["root"] / "keyless-var" / "media").iterdir()
    )
    # --ignore-checks goes past the keys; here the storage is away, and that is named.
    dead_s3 = {
        "S3_BUCKET": "gone",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "S3_ACCESS_KEY": "test",
        "S3_SECRET_KEY": "test",
    }
    error = manage_fails(
        {**keyless, **dead_s3}, "restore", str(drill["archive"]), "--ignore-checks"
    )
    assert "Media storage failed: listing bucket 'gone'" in error


def test_a_changed_byte_is_refused_before_anything_is_restored(drill, media_root):
    unpacked = drill["root"] / "damaged"
    with tarfile.open(drill["archive"]) as archive:
        archive.extractall(unpacked, filter="data")
    [folder] = unpacked.iterdir()
    segment = next(path for path in sorted((folder / "media").rglob("*.m4s")))
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x01
    segment.write_bytes(bytes(data))
    name = segment.relative_to(folder).as_posix()
    # Checked before the database is even looked at (this test has none: any query would fail).
    with pytest.raises(CommandError, match=f"The backup is damaged: {name} has SHA-256"):
        call_command("restore", str(folder))
    assert not media_root.exists() or not any(media_root.iterdir())


def _server() -> dict:
    settings_dict = connection.settings_dict
    return {
        "host": settings_dict["HOST"] or "127.0.0.1",
        "port": settings_dict["PORT"] or 5432,
        "user": settings_dict["USER"],
        "password": settings_dict["PASSWORD"] or None,
    }


def _scratch_database(name: str) -> str:
    """A new empty PostgreSQL database ``name`` on the test server (dropped first if left over);
    its URL."""
    with psycopg.connect(dbname="postgres", autocommit=True, **_server()) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/streamgate"))
    return urlunsplit(url._replace(path=f"/{name}"))


@pytest.mark.django_db(transaction=True)
def test_postgresql_and_s3_round_trip(s3_storage, moto_server, tmp_path):
    content = ContentFactory(title="In the bucket")
    stored = {
        f"renditions/{content.id}/job/master.m3u8": (
            b"#EXTM3U\n",
            "application/vnd.apple.mpegurl",
            "no-cache",
        ),
        f"public/{content.id}/job/hls/chunk-stream0-00001.m4s": (
            os.urandom(70_000),
            "video/iso.segment",
            "public, max-age=31536000, immutable",
        ),
    }
    for name, (data, content_type, cache_control) in stored.items():
        local = tmp_path / "upload"
        local.write_bytes(data)
        storage_put_file(str(local), name, content_type=content_type, cache_control=cache_control)
    call_command("backup", str(tmp_path / "backup"))
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["database"]["vendor"] == "postgresql"
    assert manifest["storage"]["kind"] == "s3"
    assert sorted(entry["path"] for entry in manifest["files"]) == sorted(
        ["database.pgdump", *(f"media/{name}" for name in stored)]
    )

    name = f"{connection.settings_dict['NAME']}_restore"
    bucket = f"restored-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    target = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "streamgate.settings.test",
        "DATABASE_URL": _scratch_database(name),
        "S3_ENDPOINT_URL": moto_server,
        "S3_BUCKET": bucket,
        "S3_ACCESS_KEY": "test",
        "S3_SECRET_KEY": "test",
    }
    # A dump pg_restore cannot read (its manifest entry rewritten to match), for later.
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "backup", broken)
    garbage = b"PGDMP" + os.urandom(500)
    (broken / "database.pgdump").write_bytes(garbage)
    manifest["files"] = [
        {"path": "database.pgdump", "size": len(garbage), "sha256": sha256(garbage).hexdigest()}
        if entry["path"] == "database.pgdump"
        else entry
        for entry in manifest["files"]
    ]
    (broken / "manifest.json").write_text(json.dumps(manifest))
    try:
        manage(target, "restore", str(tmp_path / "backup"))
        with psycopg.connect(target["DATABASE_URL"]) as restored:
            titles = restored.execute("SELECT title FROM content_content").fetchall()
        assert titles == [("In the bucket",)]
        for key, (data, content_type, cache_control) in stored.items():
            got = s3.get_object(Bucket=bucket, Key=key)
            assert got["Body"].read() == data
            assert got["ContentType"] == content_type
            assert got["CacheControl"] == cache_control

        # Forced, with a dump that fails half-way: one transaction, so the tables stay.
        assert "pg_restore failed" in manage_fails(target, "restore", str(broken), "--force")
        with psycopg.connect(target["DATABASE_URL"]) as restored:
            titles = restored.execute("SELECT title FROM content_content").fetchall()
        assert titles == [("In the bucket",)]
        # Forced: the tables (and the functions and triggers with them) are replaced.
        manage(target, "restore", str(tmp_path / "backup"), "--force")
        with psycopg.connect(target["DATABASE_URL"]) as restored:
            titles = restored.execute("SELECT title FROM content_content").fetchall()
        assert titles == [("In the bucket",)]
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **_server()) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def pg_backup(db, tmp_path) -> Path:
    """A backup of the (empty) test database and media folder, as a folder."""
    folder = tmp_path / "backup"
    call_command("backup", str(folder))
    return folder


def _edit_manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_a_backup_made_by_newer_code_is_refused(pg_backup):
    manifest = json.loads((pg_backup / "manifest.json").read_text())
    manifest["migrations"]["content"].append("9999_from_the_future")
    _edit_manifest(pg_backup, migrations=manifest["migrations"])
    with pytest.raises(CommandError, match=r"made by newer code: migration content\.9999_"):
        call_command("restore", str(pg_backup))


def test_a_database_with_tables_is_refused_unless_forced(pg_backup):
    with pytest.raises(CommandError, match=r"The target database is not empty \(\d+ tables"):
        call_command("restore", str(pg_backup))


def test_media_storage_with_files_is_refused_unless_forced(pg_backup, media_root):
    (media_root / "sources").mkdir(parents=True)
    (media_root / "sources" / "stray.mp4").write_bytes(b"x")
    with pytest.raises(CommandError, match="The target media storage is not empty"):
        call_command("restore", str(pg_backup))


def test_a_backup_of_another_database_engine_is_refused(pg_backup):
    _edit_manifest(pg_backup, database={"vendor": "sqlite", "file": "database.pgdump"})
    with pytest.raises(CommandError, match="holds a sqlite database and this stack runs postgr"):
        call_command("restore", str(pg_backup))


def test_another_format_version_and_a_folder_without_manifest_are_refused(pg_backup, tmp_path):
    _edit_manifest(pg_backup, format_version=2)
    with pytest.raises(CommandError, match="format version 2; this code reads version 1"):
        call_command("restore", str(pg_backup))
    with pytest.raises(CommandError, match="no manifest.json: it is not a StreamGate backup"):
        call_command("restore", str(tmp_path))
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(CommandError, match="manifest.json is damaged"):
        call_command("restore", str(tmp_path))
    _edit_manifest(pg_backup, format_version=1, files=[{"path": "database.pgdump"}])
    with pytest.raises(CommandError, match="file list is damaged"):
        call_command("restore", str(pg_backup))
    empty = tmp_path / "empty"
    empty.mkdir()
    with tarfile.open(tmp_path / "empty.tar", "w") as archive:
        archive.add(empty, arcname="empty")
    with pytest.raises(CommandError, match="empty.tar holds 0 backup manifests, not one"):
        call_command("restore", str(tmp_path / "empty.tar"))
    (tmp_path / "not.tar").write_bytes(b"not a tar file at all")
    with pytest.raises(CommandError, match="Cannot read .*not.tar as a tar file"):
        call_command("restore", str(tmp_path / "not.tar"))


def test_a_missing_file_is_refused(pg_backup):
    (pg_backup / "database.pgdump").unlink()
    with pytest.raises(CommandError, match="incomplete: database.pgdump is missing"):
        call_command("restore", str(pg_backup))


def test_backup_refuses_a_folder_or_tar_in_use(pg_backup, tmp_path):
    with pytest.raises(CommandError, match="exists and is not empty; name a new folder"):
        call_command("backup", str(pg_backup))
    (tmp_path / "next.tar").write_bytes(b"an older backup")
    with pytest.raises(CommandError, match="next.tar exists already"):
        call_command("backup", str(tmp_path / "next"), "--tar")


@pytest.mark.django_db
def test_storage_other_than_disk_or_s3_is_named(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    with pytest.raises(CommandError, match="local disk and S3 storage, not InMemoryStorage"):
        call_command("backup", str(tmp_path / "backup"))


@pytest.mark.django_db
def test_pg_dump_missing_or_older_than_the_server_is_named(tmp_path, monkeypatch):
    # The only fakes here: an old pg_dump (this machine cannot install one) and a failing one.
    tools = tmp_path / "bin"
    tools.mkdir()
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(CommandError, match=r"pg_dump is not installed; install the PostgreSQL 1\d"):
        call_command("backup", str(tmp_path / "a"))
    fake = tools / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    fake.chmod(0o755)
    with pytest.raises(CommandError, match=r"version 9 and the server 1\d: pg_dump must be as new"):
        call_command("backup", str(tmp_path / "b"))
    # One that fails: its own words come through.
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi\n'
        'echo "pg_dump: error: the server went away" >&2; exit 1\n'
    )
    with pytest.raises(
        CommandError, match=r"pg_dump failed \(1\): pg_dump: error: the server went"
    ):
        call_command("backup", str(tmp_path / "c"))


@pytest.mark.django_db
def test_a_bucket_key_that_would_leave_the_archive_is_refused(s3_storage, tmp_path):
    s3_storage.put_object(Key="renditions/../../escape", Body=b"x")
    with pytest.raises(CommandError, match="Unsafe path 'media/renditions/../../escape'"):
        call_command("backup", str(tmp_path / "backup"))
    assert not (tmp_path / "escape").exists()


@pytest.mark.django_db
def test_unreachable_storage_fails_the_backup_with_its_reason(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "gone",
                "endpoint_url": f"http://127.0.0.1:{free_port()}",  # nobody listens
                "access_key": "test",
                "secret_key": "test",
                "region_name": "us-east-1",
            },
        },
    }
    with pytest.raises(CommandError, match="Media storage could not be read: listing bucket"):
        call_command("backup", str(tmp_path / "backup"))
