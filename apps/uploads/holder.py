"""Which process holds an upload's write lease, and whether it is known to be dead.

A lease token is 32 characters (``Upload.lock_token``). Ours name their holder:
``h`` + 8 random hex + 10 hex naming this host's process namespace (its boot id and PID
namespace, hashed) + the pid (5 base-36 digits) + the process's start time (8 base-36 digits,
clock ticks since boot, so that a reused pid is not mistaken for the holder).

A holder is dead when it is named by such a token, lives in *our* namespace (same machine, same
boot, same PID namespace: we can see its pids), and ``/proc/<pid>`` is gone, a zombie, or a
process started at another time. Anything else (another host or container, a token without a
holder, no /proc) is never presumed dead: its lease runs out by itself (TUS_LOCK_SECONDS).
"""

import hashlib
import os
import secrets
from functools import cache
from pathlib import Path

PREFIX = "h"
_RANDOM, _NAMESPACE, _PID, _START = 8, 10, 5, 8
LENGTH = len(PREFIX) + _RANDOM + _NAMESPACE + _PID + _START  # 32, the column's size


def _base36(number: int, width: int) -> str | None:
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits.rjust(width, "0") if len(digits) <= width else None


@cache
def _namespace() -> str | None:
    """This machine's boot and PID namespace, hashed; None where /proc cannot tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return hashlib.sha256(f"{boot}|{pid_namespace}".encode()).hexdigest()[:_NAMESPACE]


def _process(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process, None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (command name)"
    return fields[0], int(fields[19])


@cache
def _started(pid: int) -> int | None:
    """When process ``pid`` (this one: cached by pid, so a forked child reads its own) started;
    read once, not at every PATCH."""
    found = _process(pid)
    return found[1] if found else None


def holder_token() -> str:
    """A new lease token naming this process (a random one where it cannot be named)."""
    namespace, started = _namespace(), _started(os.getpid())
    pid = _base36(os.getpid(), _PID)
    start = _base36(started, _START) if started is not None else None
    if namespace is None or pid is None or start is None:
        return secrets.token_hex(LENGTH // 2)
    return PREFIX + secrets.token_hex(_RANDOM // 2) + namespace + pid + start


def holder_dead(token: str) -> bool:
    """Whether ``token``'s holder is a process of this namespace that is known to be dead."""
    if len(token) != LENGTH or not token.startswith(PREFIX) or _namespace() is None:
        return False
    at = len(PREFIX) + _RANDOM
    namespace, pid, start = (
        token[at : at + _NAMESPACE],
        token[at + _NAMESPACE : at + _NAMESPACE + _PID],
        token[at + _NAMESPACE + _PID :],
    )
    if namespace != _namespace():
        return False
    try:
        pid_number, start_ticks = int(pid, 36), int(start, 36)
    except ValueError:
        return False
    found = _process(pid_number)
    return found is None or found[0] in ("Z", "X") or found[1] != start_ticks
