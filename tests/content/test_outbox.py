"""The outbox: a task is written with the transaction that asks for it, sent by its commit, and
sent by the relay when the broker was away. Real PostgreSQL and Redis; faults through a proxy."""

import base64
import json
import subprocess
import sys
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.content.models import OutboxMessage
from apps.content.outbox import outbox_add, outbox_relay
from apps.content.tasks import content_files_delete
from apps.uploads.tasks import upload_finalize
from streamgate.celery import enqueue_on_commit
from tests.support.faults import fault_proxy
from tests.support.processes import ROOT, embedded_env, manage


@pytest.fixture
def broker():
    """The suite's Redis as the broker sees it, its queues emptied first."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("default", "uploads")
    return client


def queued(client, queue: str) -> list[dict]:
    """The task messages waiting in ``queue``, oldest first."""
    messages = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        messages.append({"task": headers["task"], "args": args, "eta": headers["eta"]})
    return messages


@pytest.mark.django_db(transaction=True)
def test_the_commit_sends_the_task_and_empties_the_outbox(broker):
    with transaction.atomic():
        enqueue_on_commit(content_files_delete, "c-1")
        row = OutboxMessage.objects.get()
        assert (row.task, row.args, row.kwargs) == (content_files_delete.name, ["c-1"], {})
        assert queued(broker, "default") == []  # nothing leaves before the commit
    assert queued(broker, "default") == [
        {"task": content_files_delete.name, "args": ["c-1"], "eta": None}
    ]
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_sends_nothing(broker):
    def failing_work() -> None:
        with transaction.atomic():
            enqueue_on_commit(content_files_delete, "c-2")
            raise RuntimeError("the work failed")

    with pytest.raises(RuntimeError):
        failing_work()
    assert queued(broker, "default") == []
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_relay_sends_rows_past_their_grace_only(broker):
    late = outbox_add(task=upload_finalize.name, args=("u-1",), kwargs={}, options={})
    fresh = outbox_add(task=upload_finalize.name, args=("u-2",), kwargs={}, options={})
    OutboxMessage.objects.filter(pk=late.pk).update(send_after=timezone.now() - timedelta(1))
    assert outbox_relay() == {"sent": 1, "unsent": 0}
    assert queued(broker, "uploads") == [
        {"task": upload_finalize.name, "args": ["u-1"], "eta": None}
    ]
    assert list(OutboxMessage.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert outbox_relay() == {"sent": 0, "unsent": 0}  # the fresh row's own send is under way
    later = timezone.now() + timedelta(seconds=settings.OUTBOX_GRACE_SECONDS + 1)
    assert outbox_relay(now=later) == {"sent": 1, "unsent": 0}
    assert [m["args"] for m in queued(broker, "uploads")] == [["u-1"], ["u-2"]]


@pytest.mark.django_db(transaction=True)
def test_a_delayed_task_sent_late_waits_only_for_the_rest_of_its_delay(broker):
    # Written by enqueue_on_commit_with(..., options={"countdown": 600}) ten minutes ago, while
    # the broker was away.
    row = outbox_add(
        task=content_files_delete.name, args=("c-3",), kwargs={}, options={"countdown": 600}
    )
    created = timezone.now() - timedelta(seconds=590)
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=created, send_after=created)
    assert outbox_relay() == {"sent": 1, "unsent": 0}
    (message,) = queued(broker, "default")
    eta = timezone.datetime.fromisoformat(message["eta"])
    assert timedelta(seconds=5) < eta - timezone.now() <= timedelta(seconds=10)


@pytest.mark.django_db(transaction=True)
def test_the_relay_keeps_rows_while_the_broker_is_away(tmp_path):
    """The relay in another process whose Redis refuses connections: nothing is lost, the
    row's next attempt is put off by the grace, and the run stops at the first failure."""
    rows = [
        outbox_add(task=upload_finalize.name, args=(f"u-{n}",), kwargs={}, options={})
        for n in range(2)
    ]
    OutboxMessage.objects.update(send_after=timezone.now() - timedelta(seconds=1))
    db = settings.DATABASES["default"]
    with fault_proxy(6379) as dead_redis:
        dead_redis.down()
        env = embedded_env(
            tmp_path,
            DJANGO_SETTINGS_MODULE="streamgate.settings.test",
            DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            REDIS_URL=f"redis://127.0.0.1:{dead_redis.port}/0",
        )
        out = manage(
            env,
            "shell",
            "-c",
            "from apps.content.outbox import outbox_relay; print(outbox_relay())",
        )
    assert out.strip().splitlines()[-1] == "{'sent': 0, 'unsent': 1}"
    first, second = OutboxMessage.objects.order_by("pk")
    assert [first.pk, second.pk] == [row.pk for row in rows]
    assert (first.attempts, second.attempts) == (1, 0)
    assert first.send_after > timezone.now() + timedelta(seconds=settings.OUTBOX_GRACE_SECONDS - 5)
    assert second.send_after < timezone.now()


def test_a_task_sent_whose_row_cannot_be_deleted_counts_as_sent(tmp_path, broker):
    """PostgreSQL goes away between the send and the delete: the send stands (the relay may
    send the task again, which an idempotent task shrugs off) and the caller goes on."""
    with fault_proxy(5432) as dead_postgres:
        dead_postgres.down()
        env = embedded_env(
            tmp_path,
            DJANGO_SETTINGS_MODULE="streamgate.settings.test",
            DATABASE_URL=f"postgres://root@127.0.0.1:{dead_postgres.port}/nowhere",
            DATABASE_CONN_MAX_AGE="60",  # a plain connection: refused at once, no pool wait
            REDIS_URL=settings.REDIS_URL,
            LOG_FORMAT="plain",
        )
        script = (
            "from apps.content.models import OutboxMessage\n"
            "from apps.content.outbox import outbox_send\n"
            "message = OutboxMessage(pk=41, task='apps.content.tasks.content_files_delete',"
            " args=['c-4'], kwargs={}, options={})\n"
            "print(outbox_send(message=message))\n"
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    assert result.stdout.strip().splitlines()[-1] == "True"
    assert "task sent but still in the outbox; the relay may send it again" in result.stderr
    assert queued(broker, "default") == [
        {"task": "apps.content.tasks.content_files_delete", "args": ["c-4"], "eta": None}
    ]
