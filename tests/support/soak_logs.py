"""Reading the stack's logs for the soak benchmark's evidence (tests/support/soak_report.py):
JSON lines from Django and Celery, plain text from uvicorn, and where an exception came from."""

import json
import re
from datetime import datetime
from pathlib import Path

# Frames that only carry an error from the service up: the cause is shown at the frame above.
PLUMBING = re.compile(
    r"site-packages/(redis|psycopg|psycopg_pool|kombu|django_redis|django/core/cache|django/db|"
    r"asgiref|channels_redis)/|/lib/python3\.\d+/(?!site-packages)"
)
OURS = re.compile(r"^(?!.*site-packages).*?/(apps|streamgate)/")
FRAME = re.compile(r'File "([^"]+)", line \d+')
OURS_SHORT = r"\1/"
LIBRARY = re.compile(r"^.*site-packages/")


def epoch_of(stamp: str) -> float | None:
    try:
        return datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except (ValueError, AttributeError):
        return None


def read_log(path: Path) -> list[dict]:
    """WARNING-and-worse entries: JSON lines as they are, and plain-text records (uvicorn's
    ``ERROR:    Exception in ASGI application`` and its traceback) as one entry each."""
    entries: list[dict] = []
    block: dict | None = None
    if not path.exists():
        return entries
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            block = None
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                entry["t"] = epoch_of(entry.get("time", ""))
                entries.append(entry)
            continue
        head = re.match(r"^(INFO|WARNING|ERROR|CRITICAL|DEBUG):\s+(.*)", line)
        if head:
            block = None
            if head.group(1) != "INFO" and head.group(1) != "DEBUG":
                block = {"level": head.group(1), "logger": "uvicorn", "t": None}
                block.update(message=head.group(2), exception="")
                entries.append(block)
        elif block is not None:
            block["exception"] += line + "\n"
    return entries


def cause(entry: dict) -> str:
    """The exception's last line and where it came from: the innermost frames of our code, or
    else the innermost frame above the driver of the service that failed."""
    message = entry.get("message", "")
    text = entry.get("exception") or (message if "Traceback" in message else "")
    if not text:
        return message.splitlines()[0][:200] if message else ""
    # Of chained tracebacks, the last one that passes through our code (else the last one).
    blocks = [block for block in text.split("Traceback (most recent call last):") if block.strip()]
    text = next(
        (b for b in reversed(blocks) if any(OURS.match(p) for p in FRAME.findall(b))),
        blocks[-1] if blocks else text,
    )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = next(
        (line for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception)", line)), lines[-1]
    )
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text)
    # Our innermost frames, then the innermost library frame above the service's driver.
    shown = [f"{OURS.sub(OURS_SHORT, p)}:{n} {f}" for p, n, f in frames if OURS.match(p)][-3:]
    last_ours = max((i for i, (p, _, _) in enumerate(frames) if OURS.match(p)), default=-1)
    above = [(p, n, f) for p, n, f in frames[last_ours + 1 :] if not PLUMBING.search(p)]
    if above:
        shown.append(f"{LIBRARY.sub('', above[-1][0])}:{above[-1][1]} {above[-1][2]}")
    where = " > ".join(dict.fromkeys(shown))
    return f"{last[:160]}" + (f" (at {where})" if where else "")


def describe(name: str, line: str, t0_wall: float) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return f"{name}: {line[:200]}"
    t = epoch_of(entry.get("time", ""))
    when = f"{t - t0_wall:+7.1f} s" if t else " " * 9
    skip = {"time", "level", "logger", "message", "request_id", "exception", "data", "t"}
    extra = {k: v for k, v in entry.items() if k not in skip}
    text = f"{entry.get('level', '')} {entry.get('logger', '')}: {entry.get('message', '')}"
    if entry.get("exception") or "Traceback" in entry.get("message", ""):
        text = f"{entry.get('level', '')} {entry.get('logger', '')}: {cause(entry)}"
    return f"{name} {when} {text.splitlines()[0]} {json.dumps(extra) if extra else ''}"


def evidence(logs: dict[str, Path], needles: list[str], t0_wall: float) -> list[str]:
    """The last lines naming one of ``needles``, then the warnings and errors logged by the same
    process within 3 s after the last of them (failures that do not name the ids)."""
    found: list[str] = []
    for name, path in logs.items():
        if not path.exists():
            continue
        lines = path.read_text(errors="replace").splitlines()
        hits = [i for i, line in enumerate(lines) if any(needle in line for needle in needles)]
        if not hits:
            continue
        found += [describe(name, lines[i], t0_wall) for i in hits[-5:]]
        last_time = (
            epoch_of(json.loads(lines[hits[-1]]).get("time", ""))
            if lines[hits[-1]].startswith("{")
            else None
        )
        if last_time is None:
            continue
        for line in lines[hits[-1] + 1 :]:
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            t = epoch_of(entry.get("time", ""))
            if t is not None and t > last_time + 3:
                break
            if entry.get("level") in ("ERROR", "CRITICAL") or "Traceback" in entry.get(
                "message", ""
            ):
                found.append("  then " + describe(name, line, t0_wall))
    return found
