"""A registration step stopped by its soft time limit in a real Celery worker is recorded as a
failed attempt and left for the reaper, not left pending with nothing said."""

import json
import os
import time

import pytest
import redis
from django.conf import settings as django_settings

from apps.chain.gate_digest import gate_hash
from apps.chain.models import ChainContract, ContractKind, Registration
from apps.chain.tasks import chain_registration_advance
from apps.content.models import ContentStatus
from tests.factories import ContentFactory
from tests.support.evm import SIGNER_KEY, TESTER
from tests.support.processes import celery_worker, embedded_env


@pytest.mark.django_db(transaction=True)
def test_a_step_stopped_by_its_time_limit_is_recorded_and_left_for_the_reaper(
    tmp_path, media_root, logs_dir
):
    db = django_settings.DATABASES["default"]
    env = embedded_env(
        tmp_path,  # the worker's media folder is the test's (tmp_path / "media")
        DJANGO_SETTINGS_MODULE="streamgate.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=django_settings.REDIS_URL,
        CHAIN_RPC_URLS=json.dumps({TESTER: "eth-tester://worker"}),
        CHAIN_SIGNER_KEY=SIGNER_KEY,
    )
    registry = ChainContract.objects.create(
        chain=TESTER, kind=ContractKind.REGISTRY, address="0x" + "11" * 20
    )
    # Finalised before CIDs were stored, and its storage hangs: the original is a pipe nobody
    # writes to, so reading it blocks the way a stalled network filesystem does.
    content = ContentFactory(status=ContentStatus.READY)
    content.source_path = f"sources/{content.id}/v.mp4"
    (media_root / "sources" / str(content.id)).mkdir(parents=True)
    os.mkfifo(media_root / content.source_path)
    content.save()
    registration = Registration.objects.create(
        content=content, chain=TESTER, contract=registry, gate_hash=gate_hash(content.gate)
    )

    redis.Redis.from_url(django_settings.REDIS_URL).delete("chain")  # earlier tests' messages
    with celery_worker(env, logs_dir / "worker.log", queues="chain", pool="prefork"):
        chain_registration_advance.apply_async((registration.pk,), soft_time_limit=2)
        deadline = time.monotonic() + 60
        while not Registration.objects.get(pk=registration.pk).error:
            assert time.monotonic() < deadline, (logs_dir / "worker.log").read_text()[-3000:]
            time.sleep(0.3)

    registration.refresh_from_db()
    assert registration.status == "pending"
    assert registration.error == (
        "Attempt 1 of 8 failed: the step ran out of time; it will be resumed."
    )
    assert registration.failures == 1
    assert registration.lease_token == ""  # the next step may start at once
    assert registration.step_due_at is not None  # and the reaper knows it is due
    assert "SoftTimeLimitExceeded" in (logs_dir / "worker.log").read_text()
