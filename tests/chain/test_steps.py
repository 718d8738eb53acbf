"""Registrations and pins never stay pending for ever: failed steps are capped, stalls are
reaped, and a failed registration can be sent again (py-evm chain, PostgreSQL)."""

import json
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import F
from django.utils import timezone

from apps.chain.models import ChainContract, ContractKind, Pin, PinStatus, Registration
from apps.chain.models import RegistrationStatus as Status
from apps.chain.tasks import chain_pin_advance, chain_registration_advance
from tests.factories import registrable_content
from tests.support.evm import SIGNER_KEY
from tests.support.pinning_server import PinningServer
from tests.support.processes import free_port

pytestmark = pytest.mark.django_db

LOCAL = "eip155:31337"


@pytest.fixture
def content(media_root):
    """A ready content finalised before CIDs were stored (no source_cid)."""
    content = registrable_content()
    content.source_path = default_storage.save(
        f"sources/{content.id}/v.mp4", ContentFile(b"v" * 5000)
    )
    content.save()
    return content


@pytest.fixture
def dead_node(settings):
    """A chain whose RPC endpoint is a loopback port nobody listens on."""
    settings.CHAIN_RPC_URLS = {LOCAL: f"http://127.0.0.1:{free_port()}"}
    settings.CHAIN_SIGNER_KEY = SIGNER_KEY
    settings.CHAIN_OVERRIDES = {}
    ChainContract.objects.create(chain=LOCAL, kind=ContractKind.REGISTRY, address="0x" + "11" * 20)
    return LOCAL


def sent(callbacks, task) -> list:
    """The tasks of ``task`` a block enqueued (other callbacks: cache invalidations)."""
    return [c for c in callbacks if getattr(c, "task", None) is task]


def run_steps(task, row_id: int, capture, limit: int = 20) -> list[float]:
    """Run the task as the worker would until it stops scheduling itself; the countdowns."""
    countdowns = []
    for _ in range(limit):
        (row_id,) = json.loads(json.dumps([row_id]))
        with capture() as callbacks:
            task.run(row_id)
        again = sent(callbacks, task)
        if not again:
            return countdowns
        countdowns.append(again[0].options.get("countdown", 0))
    raise AssertionError(f"still scheduling itself after {limit} steps")


def test_an_unreachable_node_fails_the_registration_after_the_cap(
    content, dead_node, settings, client_for, django_capture_on_commit_callbacks
):
    settings.CHAIN_STEP_MAX_FAILURES = 4
    api = client_for(content.owner)
    url = f"/api/v1/contents/{content.id}/"
    with django_capture_on_commit_callbacks() as callbacks:
        assert api.post(url + "register/", {"chain": dead_node}, format="json").status_code == 202
    (queued,) = sent(callbacks, chain_registration_advance)

    countdowns = run_steps(
        chain_registration_advance, queued.args[0], django_capture_on_commit_callbacks
    )
    assert countdowns == [30, 60, 120]  # backoff, then the fourth failure is the last
    registration = Registration.objects.get(pk=queued.args[0])
    assert registration.status == Status.FAILED
    assert registration.failures == 4
    assert registration.error == (
        f"Gave up after 4 failed attempts in a row; the last: the node of {dead_node} could not "
        "be reached (ConnectionError). Register again once this is fixed."
    )
    assert registration.lease_token == ""
    assert api.get(url).json()["onchain"]["error"] == registration.error

    # Sent again from the API: a new registration, pending.
    again = api.post(url + "register/", {"chain": dead_node}, format="json")
    assert again.status_code == 202
    assert again.json()["onchain"]["status"] == "pending"
    assert Registration.objects.filter(content=content).count() == 2


def test_a_failed_attempt_is_shown_while_it_is_retried(
    content, dead_node, settings, client_for, django_capture_on_commit_callbacks
):
    from apps.chain.services import registration_request

    registration = registration_request(content=content, caip2=dead_node)
    before = timezone.now()
    with django_capture_on_commit_callbacks() as callbacks:
        chain_registration_advance.run(registration.pk)
    registration.refresh_from_db()
    assert registration.status == Status.PENDING
    assert registration.error == (
        f"Attempt 1 of 8 failed: the node of {dead_node} could not be reached "
        "(ConnectionError); trying again in 30 s."
    )
    assert registration.step_due_at >= before + timedelta(seconds=30)
    (retry,) = sent(callbacks, chain_registration_advance)
    assert retry.options == {"countdown": 30}
    onchain = client_for(content.owner).get(f"/api/v1/contents/{content.id}/").json()["onchain"]
    assert onchain["status"] == "pending"
    assert onchain["error"] == registration.error


def test_a_registration_whose_source_is_gone_fails_and_can_be_sent_again(
    content, deployed, tester_chain, client_for, django_capture_on_commit_callbacks
):
    """Finalised before CIDs were stored, and the original file is gone: there is no CID to
    register. The registration fails with the reason instead of staying pending."""
    default_storage.delete(content.source_path)
    api = client_for(content.owner)
    url = f"/api/v1/contents/{content.id}/"
    with django_capture_on_commit_callbacks() as callbacks:
        api.post(url + "register/", {"chain": tester_chain.caip2}, format="json")
    (queued,) = sent(callbacks, chain_registration_advance)
    assert (
        run_steps(chain_registration_advance, queued.args[0], django_capture_on_commit_callbacks)
        == []
    )
    onchain = api.get(url).json()["onchain"]
    assert onchain["status"] == "failed"
    assert onchain["error"] == (
        "The content's original file is missing from storage, so its CID cannot be computed; "
        "upload the file again."
    )
    response = api.post(url + "register/", {"chain": tester_chain.caip2}, format="json")
    assert response.status_code == 202
    assert response.json()["onchain"]["status"] == "pending"


def test_an_old_contents_cid_is_computed_once_and_kept(
    content, deployed, tester_chain, django_capture_on_commit_callbacks
):
    from apps.chain.services import registration_request
    from apps.content.cid import cid_of_bytes

    registration = registration_request(content=content, caip2=tester_chain.caip2)
    run_steps(chain_registration_advance, registration.pk, django_capture_on_commit_callbacks)
    content.refresh_from_db()
    assert content.source_cid == cid_of_bytes(b"v" * 5000)
    registration.refresh_from_db()
    assert registration.status == Status.CONFIRMED
    assert registration.cid == content.source_cid


def test_the_reaper_resumes_a_registration_whose_step_never_ran(
    content, deployed, tester_chain, settings, django_capture_on_commit_callbacks
):
    from apps.chain.services import chain_reap, registration_request

    registration = registration_request(content=content, caip2=tester_chain.caip2)
    # Its message was lost (the broker restarted): nothing happens until the reaper looks.
    soon = timezone.now() + timedelta(seconds=settings.CHAIN_REAP_AFTER_SECONDS - 5)
    with django_capture_on_commit_callbacks() as callbacks:
        assert chain_reap(now=soon)["resumed"] == 0
    assert sent(callbacks, chain_registration_advance) == []
    late = timezone.now() + timedelta(seconds=settings.CHAIN_REAP_AFTER_SECONDS + 5)
    with django_capture_on_commit_callbacks() as callbacks:
        assert chain_reap(now=late) == {
            "resumed": 1,
            "failed": 0,
            "pins_resumed": 0,
            "pins_failed": 0,
        }
    (resumed,) = sent(callbacks, chain_registration_advance)
    assert resumed.args == (registration.pk,)
    registration.refresh_from_db()
    assert registration.failures == 1
    run_steps(chain_registration_advance, registration.pk, django_capture_on_commit_callbacks)
    registration.refresh_from_db()
    assert registration.status == Status.CONFIRMED
    assert registration.failures == 0


def test_the_reaper_waits_for_a_dead_steps_lease_to_expire(
    content, deployed, tester_chain, settings, django_capture_on_commit_callbacks
):
    """A worker died in the middle of a step and left its lease: the reaper leaves the
    registration alone until the lease expires, then resumes it."""
    from apps.chain.services import chain_reap, registration_request
    from apps.chain.steps import LEASE, lease_claim

    settings.CHAIN_REAP_AFTER_SECONDS = 60  # overdue well before the lease expires
    registration = registration_request(content=content, caip2=tester_chain.caip2)
    assert lease_claim(registration.pk) is not None  # the step that died
    assert lease_claim(registration.pk) is None  # a duplicate delivery does nothing meanwhile
    with django_capture_on_commit_callbacks():
        assert chain_reap(now=timezone.now() + timedelta(seconds=65))["resumed"] == 0
    # The lease's five minutes pass.
    passed = LEASE + timedelta(seconds=5)
    Registration.objects.filter(pk=registration.pk).update(
        lease_expires_at=F("lease_expires_at") - passed, step_due_at=F("step_due_at") - passed
    )
    with django_capture_on_commit_callbacks() as callbacks:
        assert chain_reap()["resumed"] == 1
    assert [c.args for c in sent(callbacks, chain_registration_advance)] == [(registration.pk,)]
    run_steps(chain_registration_advance, registration.pk, django_capture_on_commit_callbacks)
    assert Registration.objects.get(pk=registration.pk).status == Status.CONFIRMED


def test_the_reaper_fails_a_registration_past_its_cap(
    content, deployed, tester_chain, settings, client_for, django_capture_on_commit_callbacks
):
    from apps.chain.services import chain_reap, registration_request

    settings.CHAIN_STEP_MAX_FAILURES = 3
    registration = registration_request(content=content, caip2=tester_chain.caip2)
    now = timezone.now()
    for round_ in range(1, 4):  # every resumed step is lost too
        now += timedelta(seconds=settings.CHAIN_REAP_AFTER_SECONDS + 5)
        with django_capture_on_commit_callbacks():
            counts = chain_reap(now=now)
        assert (counts["resumed"], counts["failed"]) == ((1, 0) if round_ < 3 else (0, 1))
    registration.refresh_from_db()
    assert registration.status == Status.FAILED
    assert registration.error == (
        "Gave up: the registration stopped moving 3 times in a row (last error: none)."
    )
    response = client_for(content.owner).post(
        f"/api/v1/contents/{content.id}/register/", {"chain": tester_chain.caip2}, format="json"
    )
    assert response.status_code == 202


def test_the_reaper_leaves_a_registration_waiting_for_gas_alone(
    content, deployed, tester_chain, settings, django_capture_on_commit_callbacks
):
    from apps.chain.services import chain_reap, registration_request

    settings.CHAIN_OVERRIDES = {tester_chain.caip2: {"max_base_fee_gwei": 0.000000001}}
    registration = registration_request(content=content, caip2=tester_chain.caip2)
    with django_capture_on_commit_callbacks():
        chain_registration_advance.run(registration.pk)
    registration.refresh_from_db()
    assert registration.status == Status.WAITING_GAS
    due = registration.step_due_at
    with django_capture_on_commit_callbacks():
        just_before = due + timedelta(seconds=settings.CHAIN_REAP_AFTER_SECONDS - 5)
        assert chain_reap(now=just_before)["resumed"] == 0
        just_after = due + timedelta(seconds=settings.CHAIN_REAP_AFTER_SECONDS + 5)
        assert chain_reap(now=just_after)["resumed"] == 1


@pytest.fixture
def pinning(settings):
    with PinningServer() as server:
        settings.IPFS_PINNING_URL = server.url
        settings.IPFS_PINNING_TOKEN = server.token
        yield server


def test_the_reaper_resumes_a_stalled_pin_and_fails_one_past_its_cap(
    content, pinning, settings, django_capture_on_commit_callbacks
):
    from apps.chain.services import chain_reap, pin_request

    settings.CHAIN_STEP_MAX_FAILURES = 2
    stalled = pin_request(content=content)  # its step never runs
    late = timezone.now() + timedelta(seconds=settings.CHAIN_REAP_AFTER_SECONDS + 5)
    with django_capture_on_commit_callbacks() as callbacks:
        assert chain_reap(now=late)["pins_resumed"] == 1
    (resumed,) = sent(callbacks, chain_pin_advance)
    assert resumed.args == (stalled.pk,)
    assert Pin.objects.get(pk=stalled.pk).failures == 1

    later = late + timedelta(seconds=settings.CHAIN_REAP_AFTER_SECONDS + 5)
    with django_capture_on_commit_callbacks():
        assert chain_reap(now=later)["pins_failed"] == 1
    stalled.refresh_from_db()
    assert stalled.status == PinStatus.FAILED
    assert stalled.error == "Gave up: pinning stopped moving 2 times in a row."


def test_a_resumed_pin_completes_and_a_polling_pin_is_not_stalled(
    content, pinning, settings, django_capture_on_commit_callbacks
):
    from apps.chain.services import chain_reap, pin_request

    pin = pin_request(content=content)
    with django_capture_on_commit_callbacks():
        chain_pin_advance.run(pin.pk)
    pin.refresh_from_db()
    assert pin.status == PinStatus.QUEUED
    # Polled every IPFS_POLL_SECONDS: due then, not stalled before CHAIN_REAP_AFTER_SECONDS more.
    assert pin.step_due_at > timezone.now()
    with django_capture_on_commit_callbacks():
        assert chain_reap(now=pin.step_due_at)["pins_resumed"] == 0
    assert run_steps(chain_pin_advance, pin.pk, django_capture_on_commit_callbacks)
    pin.refresh_from_db()
    assert pin.status == PinStatus.PINNED
    assert pin.step_due_at is None


def test_a_pin_whose_source_is_gone_fails_with_the_reason(
    content, pinning, django_capture_on_commit_callbacks
):
    from apps.chain.services import pin_request

    default_storage.delete(content.source_path)  # finalised before CIDs, and the file is gone
    pin = pin_request(content=content)
    assert run_steps(chain_pin_advance, pin.pk, django_capture_on_commit_callbacks) == []
    pin.refresh_from_db()
    assert pin.status == PinStatus.FAILED
    assert pin.error == (
        "The content's original file is missing from storage, so its CID cannot be computed; "
        "upload the file again."
    )
    assert pinning.requests == []  # nothing was sent to the service


def test_step_bookkeeping_leaves_cached_content_pages_alone(
    content, deployed, tester_chain, django_capture_on_commit_callbacks
):
    """Claiming and releasing a step is not news to anyone reading the content API; the
    registration's progress is."""
    from apps.chain.services import registration_request
    from apps.chain.steps import lease_claim
    from streamgate.versions import PUBLIC, versions_read

    registration = registration_request(content=content, caip2=tester_chain.caip2)
    before = versions_read([PUBLIC])
    assert lease_claim(registration.pk) is not None
    Registration.objects.filter(pk=registration.pk).update(  # what a step's release writes
        lease_token="", lease_expires_at=None, failures=0, step_due_at=timezone.now()
    )
    assert versions_read([PUBLIC]) == before
    run_steps(chain_registration_advance, registration.pk, django_capture_on_commit_callbacks)
    assert versions_read([PUBLIC]) != before
