"""Liveness and readiness: /healthz says the process answers, /readyz that its dependencies do."""

import contextvars
import logging
import secrets
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from streamgate.celery import app as celery_app
from streamgate.metrics import BROKER_PROBE_TIMEOUTS

logger = logging.getLogger(__name__)


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    key = f"readyz:{secrets.token_hex(4)}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("value written was not read back")
    cache.delete(key)


def check_broker() -> None:
    with celery_app.connection_for_write(transport_options=BROKER_PROBE_TIMEOUTS) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        # The filesystem transport "connects" without touching the disk; ask for a queue size.
        with conn.channel() as channel:
            channel.queue_declare(queue="default", passive=False, durable=True)


# What /readyz checks: the project's own dependencies, then those the apps register from their
# AppConfig.ready() (content registers "storage"). A check raises when its dependency is away.
CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
}


def readiness_check_register(name: str, check: Callable[[], None]) -> None:
    """Add ``check`` to /readyz under ``name`` (a second registration replaces the first)."""
    CHECKS[name] = check


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# Every check runs at once in a thread of its own, and the answer comes after this long at
# most: a dependency that hangs (a paused Redis, a PostgreSQL that accepts and never answers)
# makes its check fail, never the probe itself time out (compose waits 5 s).
READYZ_DEADLINE_SECONDS = 1.5


def _run_check(name: str, check: Callable[[], None], outcomes: dict[str, tuple]) -> None:
    started = time.perf_counter()
    try:
        check()
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"; it is logged
        outcome = f"{type(error).__name__}: {error}"[:300]
    else:
        outcome = None
    finally:
        connection.close()  # this thread's database connection goes back to the pool
    outcomes[name] = (outcome, round((time.perf_counter() - started) * 1000, 1))


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers within READYZ_DEADLINE_SECONDS; 503 naming each one
    that does not.

    Why a check failed (hosts, bucket names, driver errors) goes to the log, not to anonymous
    callers; with DEBUG on, the page shows it too.
    """
    outcomes: dict[str, tuple] = {}
    deadline = time.monotonic() + READYZ_DEADLINE_SECONDS
    threads = []
    for name, check in CHECKS.items():
        # In the request's context, so that its database wait limit applies to the check.
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run,
            args=(_run_check, name, check, outcomes),
            name=f"readyz-{name}",
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    results: dict[str, dict[str, object]] = {}
    for name in CHECKS:
        detail, ms = outcomes.get(
            name,
            (f"no answer within {READYZ_DEADLINE_SECONDS:g} s", READYZ_DEADLINE_SECONDS * 1000),
        )
        results[name] = {"ok": detail is None, "ms": ms}
        if detail is not None:
            logger.warning("readiness check failed: %s: %s", name, detail)
            if settings.DEBUG:
                results[name]["error"] = detail
    failing = [name for name, result in results.items() if not result["ok"]]
    body = {"status": "fail" if failing else "ok", "failing": failing, "checks": results}
    response = JsonResponse(body, status=503 if failing else 200)
    response._has_been_logged = True  # each failing check was, above; not again by Django
    return response
