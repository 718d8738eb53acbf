"""`make run`'s var/: a secret key of its own (not one printed in the source), private files."""

import hashlib
import hmac
import json
import stat
import subprocess
import sys
from pathlib import Path

from apps.access.playback_tokens import PlaybackGrant, token_sign
from tests.support.processes import ROOT, embedded_env, manage

# The key every `make run` shared until each var/ got its own (it is in the git history).
PUBLISHED_KEY = "django-insecure-local-development-key-not-for-production"

SHOW_KEYS = """
import json, django
django.setup()
from django.conf import settings
from apps.access.playback import playback_keys
from apps.access.playback_tokens import TokenRejected, token_verify
forged = {forged!r}
try:
    token_verify(forged, content_id="ab" * 16, keys=playback_keys(), now=0)
    accepted = True
except TokenRejected:
    accepted = False
print(json.dumps({{"secret_key": settings.SECRET_KEY, "forged_accepted": accepted}}))
"""


def forged_token() -> str:
    """A year-3000 token for any content, signed with the key derived from the published one."""
    key = hmac.new(PUBLISHED_KEY.encode(), b"streamgate.playback", hashlib.sha256).digest()
    grant = PlaybackGrant(content_id="ab" * 16, job_id="cd" * 16, subject="-", expires=32503680000)
    return token_sign(grant, kid="k0", key=key)


def run_local(var_dir: Path, script: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=embedded_env(var_dir, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def keys_of(var_dir: Path) -> dict:
    result = run_local(var_dir, SHOW_KEYS.format(forged=forged_token()))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def modes(var_dir: Path) -> dict[str, int]:
    return {
        str(path.relative_to(var_dir)): stat.S_IMODE(path.lstat().st_mode)
        for path in [var_dir, *var_dir.rglob("*")]
        if not path.is_symlink()
    }


def test_each_var_dir_has_its_own_secret_key_kept_across_runs(tmp_path):
    first = keys_of(tmp_path / "one")
    assert first["secret_key"] != PUBLISHED_KEY
    assert len(first["secret_key"]) >= 50
    # A token minted from the published key opens nothing.
    assert first["forged_accepted"] is False
    assert keys_of(tmp_path / "one")["secret_key"] == first["secret_key"]
    assert keys_of(tmp_path / "two")["secret_key"] != first["secret_key"]
    key_file = tmp_path / "one" / "secret-key"
    assert key_file.read_text().strip() == first["secret_key"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_key_in_the_environment_wins_and_writes_nothing(tmp_path):
    result = run_local(
        tmp_path,
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.SECRET_KEY)",
        DJANGO_SECRET_KEY="given-" + "k" * 50,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "given-" + "k" * 50
    assert not (tmp_path / "secret-key").exists()


def test_processes_starting_together_agree_on_one_key(tmp_path):
    script = "import django; django.setup(); from django.conf import settings; " + (
        "print(settings.SECRET_KEY)"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=embedded_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    keys = set()
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        keys.add(out.strip())
    assert keys == {(tmp_path / "secret-key").read_text().strip()}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secret-key")] == []


def test_what_make_run_writes_is_private(tmp_path):
    env = embedded_env(tmp_path)
    manage(env, "migrate", "--noinput")
    manage(env, "demo_account")
    saved = run_local(
        tmp_path,
        "import django; django.setup(); from django.core.files.base import ContentFile; "
        "from django.core.files.storage import default_storage; "
        "print(default_storage.save('sources/c1/original.mp4', ContentFile(b'video')))",
    )
    assert saved.returncode == 0, saved.stderr
    found = modes(tmp_path)
    for name in ("db.sqlite3", "secret-key", "demo-login", "media/sources/c1/original.mp4"):
        assert found[name] == 0o600, name
    for name in (".", "media", "media/sources", "cache", "celery/messages", "static"):
        assert found[name] == 0o700, name
    assert {name: mode for name, mode in found.items() if mode & 0o077} == {}


def test_an_existing_var_dir_is_tightened(tmp_path):
    """A var/ an earlier version left readable by everyone is closed on the next start."""
    old = tmp_path / "var"
    (old / "media" / "sources").mkdir(parents=True)
    (old / "db.sqlite3").write_bytes(b"")
    (old / "flower-login").write_text("ops:pass\n")
    (old / "media" / "sources" / "original.mp4").write_bytes(b"video")
    for path in (old, old / "media", old / "media" / "sources"):
        path.chmod(0o755)
    for path in (old / "db.sqlite3", old / "flower-login", old / "media/sources/original.mp4"):
        path.chmod(0o644)
    keys_of(old)
    found = modes(old)
    assert {name: mode for name, mode in found.items() if mode & 0o077} == {}
    assert found["flower-login"] == 0o600
    assert found["media/sources"] == 0o700


def test_a_shared_folder_is_refused_as_var_dir(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    result = run_local(shared, "import django; django.setup()")
    assert result.returncode != 0
    assert "is a shared folder" in result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_an_empty_key_file_is_named(tmp_path):
    tmp_path.chmod(0o700)
    (tmp_path / "secret-key").write_text("\n")
    result = run_local(tmp_path, "import django; django.setup()")
    assert result.returncode != 0
    assert f"{tmp_path / 'secret-key'} is empty" in result.stderr
