"""Webhook fan-out: delay from an event to its receipt, 10 endpoints, one worker.

    python tests/benchmarks/webhooks.py [--events 1000] [--rate 1000] [--slow-events 400]

A scratch PostgreSQL database (127.0.0.1:5432) and Redis (127.0.0.1:6379, database 13); one
Celery worker on the "webhooks" queue as deployed (threads, concurrency 16); ten real HTTP
receivers in this process. One creator with ten endpoints, each subscribed to the event: each
event is written as the services write it (in a transaction, pumps queued through the outbox
at commit), ``--rate`` events a second, and every receipt is timed against the moment its
event was written (the body carries it). Phase 1: ``--events`` events, every endpoint answering
at once: p50/p95 of the 10 x events delays. Phase 2: one endpoint answers in 5 s;
``--slow-events`` events: p95 of the other nine endpoints' delays. Goal: p95 < 2 s in both.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.load import create_database, drop_database  # noqa: E402
from tests.support.processes import celery_worker, embedded_env, manage  # noqa: E402

GOAL = 2.0
REDIS_URL = "redis://127.0.0.1:6379/13"
SLOW_SECONDS = 5.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)  # as fast as one writer goes
    parser.add_argument("--slow-events", type=int, default=400)
    args = parser.parse_args()

    import redis

    database = create_database()
    folder = Path(tempfile.mkdtemp(prefix="sg-bench-webhooks-"))
    env = embedded_env(
        folder,
        DATABASE_URL=f"postgres://root@127.0.0.1:5432/{database}",
        REDIS_URL=REDIS_URL,
        LOG_LEVEL="WARNING",
        WEBHOOK_ALLOW_PRIVATE="1",
    )
    redis.Redis.from_url(REDIS_URL).flushdb()
    try:
        manage(env, "migrate", "--noinput", "-v", "0")
        os.environ.update(env)
        import django

        django.setup()
        with celery_worker(
            env, folder / "worker.log", queues="webhooks", pool="threads", concurrency=16
        ):
            return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(database)


def run(args) -> int:
    from django.db import transaction

    from apps.content.webhooks.services import endpoint_create, webhook_event_emit
    from tests.factories import CreatorFactory
    from tests.support.webhook_receiver import receiver

    delays: dict[int, list[float]] = {n: [] for n in range(10)}
    lock = threading.Lock()
    slow_endpoint = {"on": False}

    def respond_for(index: int):
        def respond(received, _):
            import json

            sent_at = json.loads(received.body)["data"]["sent_at"]
            with lock:
                delays[index].append(received.at - sent_at)
            return 200, (SLOW_SECONDS if index == 0 and slow_endpoint["on"] else 0.0), {}

        return respond

    receivers = [receiver(respond=respond_for(n)) for n in range(10)]
    hooks = [context.__enter__() for context in receivers]
    try:
        owner = CreatorFactory(username="bench-webhooks")
        for hook in hooks:
            endpoint_create(owner=owner, url=hook.url(), events=["content.ready"])

        def emit(count: int) -> None:
            started = time.monotonic()
            for n in range(count):
                time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
                with transaction.atomic():
                    webhook_event_emit(
                        event_type="content.ready",
                        owner_id=owner.pk,
                        data={"n": n, "sent_at": time.time()},
                    )

        def wait(expected: dict[int, int], timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with lock:
                    if all(len(delays[n]) >= count for n, count in expected.items()):
                        return
                time.sleep(0.1)
            raise SystemExit(f"timed out: {[len(delays[n]) for n in range(10)]} received")

        began = time.monotonic()
        emit(args.events)
        wait(dict.fromkeys(range(10), args.events), 120)
        phase1 = [d for n in range(10) for d in delays[n]]
        p50, p95 = percentile(phase1, 0.5), percentile(phase1, 0.95)
        print(
            f"phase 1: {args.events} events x 10 endpoints at {args.rate:g}/s, one worker, "
            f"{time.monotonic() - began:.1f} s"
        )
        print(
            f"  delay p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max "
            f"{max(phase1) * 1000:.0f} ms (goal p95 < {GOAL:g} s: "
            f"{'met' if p95 < GOAL else 'MISSED'}; ratio {p95 / GOAL:.2f})"
        )

        for n in range(10):
            delays[n].clear()
        slow_endpoint["on"] = True
        emit(args.slow_events)
        wait(dict.fromkeys(range(1, 10), args.slow_events), 120)
        others = [d for n in range(1, 10) for d in delays[n]]
        p95_others = percentile(others, 0.95)
        print(
            f"phase 2: {args.slow_events} events, endpoint 0 answers in {SLOW_SECONDS:g} s "
            f"(it received {len(delays[0])} so far)"
        )
        print(
            f"  the other 9: p50 {percentile(others, 0.5) * 1000:.0f} ms, p95 "
            f"{p95_others * 1000:.0f} ms (goal p95 < {GOAL:g} s: "
            f"{'met' if p95_others < GOAL else 'MISSED'}; ratio {p95_others / GOAL:.2f})"
        )
        return 0 if p95 < GOAL and p95_others < GOAL else 1
    finally:
        for context in receivers:
            context.__exit__(None, None, None)


if __name__ == "__main__":
    raise SystemExit(main())
