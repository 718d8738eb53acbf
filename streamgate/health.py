"""Liveness and readiness: /healthz says the process answers, /readyz that its dependencies do."""

import logging
import secrets
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.content.storage import storage_ping
from streamgate.celery import app as celery_app

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
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        # The filesystem transport "connects" without touching the disk; ask for a queue size.
        with conn.channel() as channel:
            channel.queue_declare(queue="default", passive=False, durable=True)


def check_storage() -> None:
    storage_ping()


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "storage": check_storage,
}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers; 503 naming each one that does not.

    Why a check failed (hosts, bucket names, driver errors) goes to the log, not to anonymous
    callers; with DEBUG on, the page shows it too.
    """
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as error:  # noqa: BLE001 - any failure means "not ready"; it is logged
            detail = f"{type(error).__name__}: {error}"[:300]
            logger.warning("readiness check failed: %s: %s", name, detail)
            results[name] = {"ok": False}
            if settings.DEBUG:
                results[name]["error"] = detail
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    failing = [name for name, result in results.items() if not result["ok"]]
    body = {"status": "fail" if failing else "ok", "failing": failing, "checks": results}
    return JsonResponse(body, status=503 if failing else 200)
