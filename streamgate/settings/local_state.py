"""What a laptop's ``var/`` keeps private: its own secret key, and everything else in it.

The local settings have no DJANGO_SECRET_KEY to read. A constant in the source would let anyone
who reads it sign sessions and playback tokens (whose key derives from the secret key) for every
local instance, so each ``var/`` gets a random key on first use, kept across runs. ``var/`` also
holds the SQLite database (session keys, token hashes), media, the cache, the broker's messages
and the demo and Flower logins: only its owner may read any of it.
"""

import os
import secrets
import stat
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

KEY_FILE_NAME = "secret-key"
# New files 0600, new folders 0700, in every process the local settings start.
PRIVATE_UMASK = 0o077


def var_dir_make_private(*, var_dir: Path) -> None:
    """Make ``var_dir`` readable by its owner only, from now on and for what is already there.

    Sets the process umask so that what this process creates is private. A ``var/`` that others
    could still enter (one made by an earlier version, or by a process with a looser umask) has
    group and other bits taken off every file and folder in it, once; the folder itself last, so
    an interrupted pass is done again on the next start.
    """
    os.umask(PRIVATE_UMASK)
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(var_dir.stat().st_mode)
    if not mode & 0o077:
        return
    if mode & stat.S_ISVTX:
        # A shared folder such as /tmp: closing it would break everyone else's use of it.
        raise ImproperlyConfigured(
            f"STREAMGATE_VAR_DIR ({var_dir}) is a shared folder; name one of StreamGate's own."
        )
    for folder, subfolders, files in os.walk(var_dir):
        for name in (*subfolders, *files):
            _drop_group_and_other(Path(folder) / name)
    os.chmod(var_dir, mode & ~0o077)


def _drop_group_and_other(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:  # another process removed it meanwhile (a consumed message)
        return
    if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
        return
    try:
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077)
    except FileNotFoundError:
        return


def local_secret_key(*, var_dir: Path) -> str:
    """This ``var/``'s own secret key: read from ``var/secret-key``, made on first use.

    Processes starting together (web, worker, beat, flower) agree on one key: the file appears
    whole or not at all (written aside with mode 0600, then hard-linked into place), and a
    process that loses the race reads the winner's.
    """
    path = var_dir / KEY_FILE_NAME
    if not path.exists():
        draft = var_dir / f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty; delete it and a new key is made.")
    return key
