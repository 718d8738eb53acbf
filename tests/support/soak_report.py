"""The soak benchmark's figures, goals and evidence (tests/benchmarks/soak.py).

Everything printed comes from the clients' records, the scratch database read directly, and the
stack's own logs (JSON lines from Django and Celery, plain text from uvicorn).
"""

import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path

from tests.support.soak_clients import Row
from tests.support.soak_logs import cause, evidence, read_log

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SETTLED = ("ready", "failed")
Goal = tuple[str, bool, str]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def outcome(row: Row) -> str:
    if row.status is None:
        return "timeout" if row.error.startswith("timeout") else "connection error"
    if row.status == 503:
        return "503 + Retry-After" if row.retry_after else "503 without Retry-After"
    if row.status >= 400:
        return str(row.status)
    return f"{row.status // 100}xx"


def is_server_error(row: Row) -> bool:
    """A 5xx that is not a 503: a bug in our code, by the design's rule."""
    return row.status is not None and row.status >= 500 and row.status != 503


def template(path: str) -> str:
    """A request's path with ids, tokens and segment numbers replaced, for grouping."""
    path = re.sub(r"^https?://[^/]+", "", path).split("?")[0]
    path = re.sub(UUID, "<id>", path)
    if path.startswith("/stream/"):
        parts = path.split("/")
        path = re.sub(r"\d+", "N", "/".join(parts[:2] + ["<token>"] + parts[3:]))
    return path


# --- logs --------------------------------------------------------------------------------------
# --- the database, read directly ---------------------------------------------------------------


def snapshot(dsn: str) -> dict[str, list[dict]]:
    import psycopg
    from psycopg.rows import dict_row

    queries = {
        "contents": "SELECT id::text, title, status, progress, error, source_path, source_sha256,"
        " updated_at FROM content_content",
        "uploads": 'SELECT id::text, content_id::text, state, "offset", length, sha256, error,'
        " metadata FROM uploads_upload",
        "jobs": "SELECT id::text, content_id::text, attempt, state, stage, error, worker,"
        " heartbeat_at, enqueued_at, started_at, finished_at FROM transcode_transcodejob"
        " ORDER BY attempt",
    }
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return {name: list(conn.execute(sql)) for name, sql in queries.items()}


def file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- the sections ------------------------------------------------------------------------------


def bucket(row: Row) -> str:
    if row.status is None:
        return "none"
    if row.status == 503 or row.status < 300:
        return "503" if row.status == 503 else "2xx"
    return "4xx" if row.status < 500 else "5xx!"


KINDS = ("api read", "playback", "stream", "tus", "readyz", "sign-in")


def requests_section(soak, rows: list[Row]) -> list[Goal]:
    print("\n== requests per phase (5xx!: other than 503; latency of answered requests)")
    print(
        f"{'phase':22} {'s':>5} {'requests':>8} {'2xx':>6} {'4xx':>5} {'503':>5} "
        f"{'5xx!':>5} {'no ans':>6} {'p50 ms':>7} {'p95 ms':>7}"
    )
    for name, start, end in soak.phases:
        mine = [row for row in rows if row.phase == name]
        answered = [row.latency * 1000 for row in mine if row.status is not None]
        count = Counter(bucket(row) for row in mine)
        print(
            f"{name:22} {end - start:5.0f} {len(mine):8d} {count['2xx']:6d} {count['4xx']:5d} "
            f"{count['503']:5d} {count['5xx!']:5d} {count['none']:6d} {pct(answered, 0.5):7.1f} "
            f"{pct(answered, 0.95):7.1f}"
        )
    print(f"\n  p50/p95 ms by kind: {'phase':20}" + "".join(f"{kind:>16}" for kind in KINDS))
    for name, _, _ in soak.phases:
        cells = []
        mine = [row for row in rows if row.phase == name and row.status is not None]
        for kind in KINDS:
            values = [row.latency * 1000 for row in mine if row.kind == kind]
            cells.append(f"{pct(values, 0.5):.0f}/{pct(values, 0.95):.0f}" if values else "-")
        print(f"  {'':19}{name:20}" + "".join(f"{cell:>16}" for cell in cells))

    if soak.delayed:
        waits = Counter(phase for phase, _ in soak.delayed)
        print(
            f"  viewer visits that waited for one of the {soak.args.in_flight} slots (not in the "
            f"latencies above): {', '.join(f'{k} {v}' for k, v in waits.items())}; longest wait "
            f"{max(wait for _, wait in soak.delayed):.1f} s"
        )

    print("\n== requests by kind and outcome")
    kinds = sorted({row.kind for row in rows})
    by_kind = {kind: Counter(outcome(row) for row in rows if row.kind == kind) for kind in kinds}
    by_kind["all"] = Counter(outcome(row) for row in rows)
    for kind, counts in by_kind.items():
        parts = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
        print(f"  {kind:9} {sum(counts.values()):6d}: {parts}")
    errors = [row for row in rows if is_server_error(row)]
    # /readyz reports to a load balancer; every other 503 tells a client when to come back.
    bare = [r for r in rows if r.status == 503 and not r.retry_after and r.kind != "readyz"]
    codes = ", ".join(f"{k} x{v}" for k, v in Counter(r.status for r in errors).items())
    # Without Redis or PostgreSQL a 503 is the honest answer; a killed worker or a lost RPC
    # provider (one of two) must not show at all.
    spared = [
        row
        for row in rows
        if not any(name in row.phase for name in ("redis", "postgres"))
        and (row.status is None or row.status >= 500)
    ]
    where = ", ".join(
        f"{k} x{v}" for k, v in Counter(f"{r.phase}: {r.kind}" for r in spared).items()
    )
    return [
        (
            "no 5xx other than 503",
            not errors,
            f"{len(errors)} ({codes or 'none'})",
        ),
        (
            "no 5xx or unanswered request at all outside the Redis and PostgreSQL outages",
            not spared,
            f"{len(spared)} ({where or 'none'})",
        ),
        ("every 503 to a client carries Retry-After", not bare, f"{len(bare)} without"),
    ]


def recovery_section(soak, rows: list[Row]) -> list[Goal]:
    print("\n== recovery after each up(): first success of a request sent after it")
    t0 = soak.phases[0][1]
    ok = True
    for fault, t_up in soak.ups:
        after = [row for row in rows if row.started >= t_up]
        parts = []
        for kind in ("readyz", "api read", "playback", "stream", "tus", "sign-in"):
            first = next((r for r in after if r.kind == kind and r.status and r.status < 300), None)
            parts.append(f"{kind} " + (f"+{first.started - t_up:.1f} s" if first else "never"))
        readyz = next((r for r in after if r.kind == "readyz" and r.status == 200), None)
        ok &= readyz is not None and readyz.started - t_up <= soak.args.recovery_goal
        until = next((start for _, start, _ in soak.phases if start > t_up + 1), float("inf"))
        # Requests cut short by the next fault are that fault's, not this one's.
        bad = [
            r
            for r in after
            if r.started + r.latency < until and (r.status is None or r.status >= 500)
        ]
        moves = [(t, old, new) for t, _, old, new in soak.poller.history if t >= t_up]
        queued = next((t - t_up for t, old, new in moves if old == "uploading"), None)
        ready = next((t - t_up for t, _, new in moves if new == "ready"), None)
        print(f"  {fault} (up at {t_up - t0:.0f} s): " + ", ".join(parts))
        print(
            f"    last 5xx or unanswered request sent +{bad[-1].started - t_up:.1f} s"
            if bad
            else "    no 5xx or unanswered request after it",
            end="; ",
        )
        print(
            f"first upload finalised {f'+{queued:.0f} s' if queued is not None else 'never'}, "
            f"first encode ready {f'+{ready:.0f} s' if ready is not None else 'never'}"
        )
    return [
        (
            "/readyz 200 again within the recovery goal after every up()",
            ok,
            f"goal {soak.args.recovery_goal:g} s",
        )
    ]


def uploads_section(soak, db, media_root: Path) -> tuple[list[Goal], set[str]]:
    """Uploads as the clients saw them and their bytes as stored; the contents whose clients
    went away (a POST whose answer was lost, an upload given up)."""
    contents = {c["id"]: c for c in db["contents"]}
    uploads = {u["id"]: u for u in db["uploads"]}
    records = soak.uploads
    finished = [r for r in records if r.finished is not None]
    unfinished = [r for r in records if r.finished is None]
    gave_up = [r for r in unfinished if r.gave_up]
    known = {r.url.rsplit("/", 1)[-1] for r in records if r.url}
    seeded = [u for u in uploads.values() if u["metadata"].get("title", "").startswith("soak -")]
    orphans = [u for u in uploads.values() if u["id"] not in known and u not in seeded]
    print("\n== uploads")
    print(
        f"  started {len(records)}, finished {len(finished)}, given up "
        f"{len(gave_up)}, still sending {len(unfinished) - len(gave_up)}; "
        f"PATCHes {sum(r.patches for r in records)}, client retries "
        f"{sum(r.retries for r in records)}; POSTs whose answer was lost "
        f"{sum(len(r.orphans) for r in records)}, uploads the clients never learned of "
        f"{len(orphans)}"
    )
    t0, end = soak.phases[0][1], soak.phases[-1][2]
    for record in unfinished:
        why = record.gave_up or "still sending at the end"
        if record.sending and not record.gave_up:
            method, since = record.sending
            why += f": its {method} sent at +{since - t0:.1f} s unanswered {end - since:.0f} s on"
        print(f"    {record.title}: {why}")
    sha: Counter = Counter()
    for record in finished:
        upload = uploads.get(record.url.rsplit("/", 1)[-1])
        content = contents.get(upload["content_id"]) if upload else None
        source = content["source_path"] if content else ""
        stored = file_sha256(media_root / source) if source else None
        if stored is None:
            sha["no stored source"] += 1
            # Not assembled: are the bytes at least intact where the uploads app keeps them?
            incoming = file_sha256(media_root / "incoming" / upload["id"]) if upload else None
            kept = {None: "no bytes in incoming/", record.sha256: "bytes intact in incoming/"}
            print(
                f"    {record.title}: no stored source (upload "
                f"{upload['state'] if upload else 'missing'}, content "
                f"{content['status'] + ': ' + content['error'][:100] if content else 'missing'}; "
                f"{kept.get(incoming, 'incoming/ bytes DIFFER')})"
            )
        elif stored == record.sha256 == content["source_sha256"] == upload["sha256"]:
            sha["match"] += 1
        else:
            sha["mismatch"] += 1
            print(
                f"    {record.title}: sent {record.sha256[:12]}, stored file {stored[:12]}, "
                f"content row {content['source_sha256'][:12]}, upload row {upload['sha256'][:12]}"
            )
    print(
        "  sha256 of each finished upload against its stored source (the file, the content's "
        f"and the upload's rows): {', '.join(f'{k} {v}' for k, v in sha.items()) or 'none'}"
    )
    away = {u["content_id"] for u in orphans}
    away |= {
        uploads[r.url.rsplit("/", 1)[-1]]["content_id"]
        for r in unfinished
        if r.url.rsplit("/", 1)[-1] in uploads
    }
    return [
        (
            "every upload finished",
            bool(records) and not unfinished,
            f"{len(finished)} of {len(records)}",
        ),
        (
            "every finished upload's sha256 equals its stored source's",
            bool(finished) and sha["match"] == len(finished),
            f"{sha['match']} of {len(finished)}",
        ),
    ], away


def contents_section(soak, db, away: set[str], logs: dict[str, Path]) -> list[Goal]:
    jobs = defaultdict(list)
    for job in db["jobs"]:
        jobs[job["content_id"]].append(job)
    status = Counter(c["status"] for c in db["contents"])
    stuck = [
        c
        for c in db["contents"]
        if c["id"] not in away
        and (c["status"] not in SETTLED or (c["status"] == "failed" and not c["error"]))
    ]
    states = Counter(job["state"] for job in db["jobs"])
    print("\n== contents and encodes")
    print(
        f"  contents {len(db['contents'])} ({len(soak.creator_tokens)} seeded before the "
        f"timeline): {', '.join(f'{k} {v}' for k, v in sorted(status.items()))}; stuck "
        f"{len(stuck)}; left by clients that went away {len(away)}"
    )
    print(
        f"  encode jobs: {', '.join(f'{k} {v}' for k, v in sorted(states.items()))}; "
        f"encodes completed {states['succeeded']}"
    )
    failed = Counter(c["error"][:150] for c in db["contents"] if c["status"] == "failed")
    for error, count in failed.most_common():
        print(f"    failed x{count}: {error or '(no message)'}")
    if stuck:
        print(f"\n== stuck contents: {len(stuck)}")
    for content in stuck:
        its_uploads = [u for u in db["uploads"] if u["content_id"] == content["id"]]
        print(
            f"  {content['id']} '{content['title']}' {content['status']} "
            f"({content['progress']}%) {content['error'][:100]}"
        )
        for upload in its_uploads:
            print(
                f"    upload {upload['id']} {upload['state']} "
                f"{upload['offset']}/{upload['length']} {upload['error'][:100]}"
            )
        for job in jobs.get(content["id"], []):
            beat = job["heartbeat_at"].strftime("%H:%M:%S") if job["heartbeat_at"] else "never"
            print(
                f"    job {job['id']} attempt {job['attempt']} {job['state']} "
                f"{job['stage'] or '-'}, heartbeat {beat} {job['error'][:100]}"
            )
        needles = [
            content["id"],
            *(u["id"] for u in its_uploads),
            *(j["id"] for j in jobs.get(content["id"], [])),
        ]
        for line in evidence(logs, needles, soak.t0_wall):
            print(f"      {line[:300]}")
    return [
        (
            "no stuck content (each ready, or failed with a message)",
            not stuck,
            f"{len(stuck)} stuck",
        ),
        ("no failed encode", not status["failed"], f"{status['failed']} failed"),
    ]


def errors_section(soak, rows: list[Row], web_log: list[dict]) -> None:
    """Every 5xx other than 503, grouped by endpoint and by the cause its request's log shows."""
    t0 = soak.phases[0][1]
    by_request = defaultdict(list)
    for entry in web_log:
        if entry.get("request_id") not in (None, "-"):
            by_request[entry["request_id"]].append(entry)
    errors = [row for row in rows if is_server_error(row)]
    print(f"\n== 5xx other than 503: {len(errors)}")
    groups = defaultdict(list)
    for row in errors:
        logged = [e for e in by_request.get(row.request_id, []) if e.get("exception")]
        why = cause(logged[-1]) if logged else f"(nothing logged) body {row.body[:120]!r}"
        groups[(row.status, row.method, template(row.path), why)].append(row)
    for (code, method, path, why), members in sorted(groups.items(), key=lambda g: -len(g[1])):
        phases = ", ".join(f"{k} {v}" for k, v in Counter(r.phase for r in members).items())
        print(
            f"  {len(members):4d} x {code} {method} {path} ({phases}); first "
            f"+{members[0].started - t0:.1f} s, request {members[0].request_id or '-'}"
        )
        print(f"         {why}")
    asgi = [e for e in web_log if "Exception in ASGI application" in e.get("message", "")]
    for why, count in Counter(cause(e) for e in asgi).most_common():
        print(f"  uvicorn 'Exception in ASGI application' x{count}: {why}")
    unanswered = Counter(
        (r.method, template(r.path), r.error.split(":")[0]) for r in rows if r.status is None
    )
    for (method, path, what), count in unanswered.most_common(8):
        print(f"  no answer ({what}) x{count}: {method} {path}")
    bare = Counter(
        (r.method, template(r.path)) for r in rows if r.status == 503 and not r.retry_after
    )
    for (method, path), count in bare.most_common():
        print(f"  503 without Retry-After x{count}: {method} {path}")


def logs_section(logs: dict[str, Path], web_log: list[dict]) -> None:
    print("\n== warnings and errors the stack logged (most frequent first)")
    for name, path in logs.items():
        entries = web_log if name == "web" else read_log(path)
        counted = Counter((e.get("level"), e.get("logger", ""), cause(e)[:220]) for e in entries)
        print(f"  {name}: {len(entries)}")
        for (level, logger, why), count in counted.most_common(10):
            print(f"    {count:5d} {level} {logger}: {why}")


def processes_section(processes: dict, cpu: dict, connections: dict[str, int]) -> list[Goal]:
    print("\n== processes")
    for name, state in processes.items():
        new = len(set(state["after"]) - set(state["before"]))
        print(
            f"  {name}: {'running' if state['alive'] else 'EXITED'}, "
            f"{len(state['before'])} processes at the start, {len(state['after'])} at the end "
            f"({new} of them new)"
        )
    share = 100 * (cpu["harness"] + cpu["proxies"]) / cpu["wall"]
    print(
        f"  load generator CPU {cpu['harness']:.0f} s, fault proxies {cpu['proxies']:.0f} s, "
        f"over {cpu['wall']:.0f} s ({share:.0f}% of one of the two cores)"
    )
    print(
        "  connections the stack opened through the proxies: "
        + ", ".join(f"{name} {count}" for name, count in connections.items())
    )
    dead = [name for name, state in processes.items() if not state["alive"]]
    return [("the stack's processes still running", not dead, ", ".join(dead) or "all")]


def memory_section(soak, samples: list[tuple[float, str, str, int]]) -> list[Goal]:
    """Each process's memory (PSS of its tree), median per phase; the goal compares the last
    steady phase with the second half of the first (its first half is the stack warming up:
    modules imported and caches filled on first use). A restarted process is measured in its
    new life."""
    first, last = soak.phases[0], soak.phases[-2] if len(soak.phases) > 1 else soak.phases[0]
    warm = (first[1] + first[2]) / 2
    names = sorted({sample[2] for sample in samples})
    print("\n== memory (PSS of each process tree, MiB): median per phase")
    print(f"  {'phase':22}" + "".join(f"{name:>9}" for name in names))
    for phase, _, _ in soak.phases:
        cells = []
        for name in names:
            sizes = [size for _, ph, process, size in samples if ph == phase and process == name]
            cells.append(f"{pct(sizes, 0.5) / 2**20:9.0f}" if sizes else f"{'-':>9}")
        print(f"  {phase:22}" + "".join(cells))
    ok, worst = True, []
    for name in names:
        before = [
            size
            for t, phase, process, size in samples
            if process == name and phase == first[0] and t >= warm
        ]
        after = [
            size for _, phase, process, size in samples if process == name and phase == last[0]
        ]
        if not before or not after:
            print(f"  {name}: not enough samples")
            continue
        a, b = pct(before, 0.5), pct(after, 0.5)
        change = (b - a) / a
        ok &= abs(change) <= 0.10
        worst.append(f"{name} {change:+.0%}")
        peak = max(size for _, _, process, size in samples if process == name)
        print(
            f"  {name}: {a / 2**20:.0f} ('{first[0]}', warmed) -> {b / 2**20:.0f} ('{last[0]}'), "
            f"{change:+.1%}; peak {peak / 2**20:.0f}"
        )
    return [("memory of every process flat (within 10%)", ok, ", ".join(worst) or "no samples")]


def signin_section(rows: list[Row], gated: list[str], rpc_calls: list[str]) -> None:
    if not gated:
        return
    signins = [r for r in rows if r.kind == "sign-in" and r.path.endswith("/verify/")]
    watched = [r for r in rows if r.kind == "playback" and any(c in r.path for c in gated)]
    print(
        f"\n== wallet sign-ins: {len(signins)} verified "
        f"({Counter(outcome(r) for r in signins)}); gated playback grants (a gate decision "
        f"each): {Counter(outcome(r) for r in watched)}"
    )
    print("  JSON-RPC calls by provider and outcome (the stack's /metrics):")
    for line in rpc_calls:
        print(f"    {line}")


def print_report(
    *,
    soak,
    dsn: str,
    media_root: Path,
    logs: dict[str, Path],
    processes: dict,
    cpu: dict,
    connections: dict[str, int],
    memory: list[tuple[float, str, str, int]] | None = None,
    gated: list[str] | None = None,
    rpc_calls: list[str] | None = None,
) -> bool:
    """Print every figure and a line per goal; True when every goal is met."""
    rows = [row for row in soak.recorder.rows if row.phase != "setup"]
    db = snapshot(dsn)
    web_log = read_log(logs["web"])
    goals = requests_section(soak, rows)
    goals += recovery_section(soak, rows)
    upload_goals, away = uploads_section(soak, db, media_root)
    goals += upload_goals
    goals += contents_section(soak, db, away, logs)
    errors_section(soak, rows, web_log)
    logs_section(logs, web_log)
    goals += processes_section(processes, cpu, connections)
    signin_section(rows, gated or [], rpc_calls or [])
    goals += memory_section(soak, memory or [])
    print("\n== goals")
    for name, ok, detail in goals:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return all(ok for _, ok, _ in goals)
