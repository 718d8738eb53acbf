"""Registering ready content on py-evm, end to end through the API and the task."""

import json

import pytest

from apps.chain.gate_digest import gate_hash
from apps.chain.models import Registration, RegistrationStatus
from apps.chain.services import content_id_bytes32, registration_advance
from apps.chain.tasks import chain_registration_advance
from apps.content.models import ContentStatus
from tests.factories import ContentFactory, WalletFactory
from tests.support.media import make_video

CREATOR_WALLET = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready_content(media_root, tmp_path):
    from django.core.files.storage import default_storage

    content = ContentFactory(
        status=ContentStatus.READY,
        gate={"erc721": {"chain": "eip155:1", "contract": "0x" + "ab" * 20, "token_id": None}},
    )
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    content.source_path = default_storage.save(f"sources/{content.id}/clip.mp4", clip.open("rb"))
    content.save()
    WalletFactory(user=content.owner, address=CREATOR_WALLET)
    return content


def advance_until_done(registration_id: int, callbacks_fixture) -> Registration:
    """What the task does, step after step, until it stops rescheduling itself."""
    for _ in range(10):
        (registration_id,) = json.loads(json.dumps([registration_id]))
        with callbacks_fixture() as callbacks:
            chain_registration_advance.run(registration_id)
        registration = Registration.objects.get(pk=registration_id)
        if not any(getattr(c, "task", None) is chain_registration_advance for c in callbacks):
            return registration
    raise AssertionError("registration never finished")


def test_ready_content_is_registered_and_shown(
    ready_content, deployed, tester_chain, client_for, django_capture_on_commit_callbacks
):
    api = client_for(ready_content.owner)
    url = f"/api/v1/contents/{ready_content.id}/"
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(
            url + "register/", {"chain": tester_chain.caip2, "price": 1000}, format="json"
        )
    assert response.status_code == 202
    assert response.json()["onchain"]["status"] == "pending"
    (queued,) = [c for c in callbacks if getattr(c, "task", None) is chain_registration_advance]

    registration = advance_until_done(queued.args[0], django_capture_on_commit_callbacks)
    assert registration.status == RegistrationStatus.CONFIRMED, registration.error
    entry = deployed.registry.functions.contentOf(content_id_bytes32(ready_content.id)).call()
    creator, cid, price, gate, _ = entry
    # The registry records the creator's own wallet, not StreamGate's signer.
    assert creator == CREATOR_WALLET != tester_chain.accounts[0]
    assert cid == registration.cid
    assert cid.startswith("bafk")
    assert price == 1000
    assert "0x" + gate.hex() == gate_hash(ready_content.gate)

    onchain = api.get(url).json()["onchain"]
    assert onchain == {
        "chain": tester_chain.caip2,
        "contract": deployed.registry.address,
        "status": "confirmed",
        "tx_hash": registration.tx_hash,
        "block": registration.block_number,
        "cid": registration.cid,
        "error": None,
    }


def test_a_second_registration_is_refused(ready_content, deployed, tester_chain, client_for):
    api = client_for(ready_content.owner)
    url = f"/api/v1/contents/{ready_content.id}/register/"
    assert api.post(url, {"chain": tester_chain.caip2}, format="json").status_code == 202
    response = api.post(url, {"chain": tester_chain.caip2}, format="json")
    assert response.status_code == 409
    assert response.json()["reason"] == "registered"


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        ({"chain": "solana:mainnet"}, 400, None),
        ({"chain": "eip155:1"}, 404, "no_registry"),
        ({"chain": "eip155:131277322940537", "price": -1}, 400, None),
    ],
)
def test_bad_registration_requests(ready_content, deployed, client_for, payload, status, reason):
    response = client_for(ready_content.owner).post(
        f"/api/v1/contents/{ready_content.id}/register/", payload, format="json"
    )
    assert response.status_code == status
    if reason:
        assert response.json()["reason"] == reason


def test_only_ready_content_is_registered(deployed, tester_chain, client_for):
    draft = ContentFactory()
    response = client_for(draft.owner).post(
        f"/api/v1/contents/{draft.id}/register/", {"chain": tester_chain.caip2}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["reason"] == "not_ready"


def test_others_cannot_register(ready_content, deployed, tester_chain, client_for, viewer):
    response = client_for(viewer).post(
        f"/api/v1/contents/{ready_content.id}/register/",
        {"chain": tester_chain.caip2},
        format="json",
    )
    assert response.status_code == 403  # ready content is visible, but not theirs


def test_a_revert_fails_the_registration_with_the_reason(
    ready_content, deployed, tester_chain, django_capture_on_commit_callbacks
):
    from apps.chain.services import registration_request
    from tests.support.evm import send

    # Another registrar (a second StreamGate instance sharing the registry, say) got there first.
    registrar, other = tester_chain.accounts[0], tester_chain.accounts[3]
    send(deployed.registry.functions.setRegistrar(other, True), registrar)
    send(
        deployed.registry.functions.register(
            content_id_bytes32(ready_content.id), other, "bafkx", 0, b"\0" * 32
        ),
        other,
    )
    registration = registration_request(content=ready_content, caip2=tester_chain.caip2)
    registration = advance_until_done(registration.pk, django_capture_on_commit_callbacks)
    assert registration.status == RegistrationStatus.FAILED
    assert registration.error == "The registry refused the registration: AlreadyRegistered."


def test_gas_above_the_ceiling_waits(
    ready_content, deployed, tester_chain, settings, django_capture_on_commit_callbacks
):
    from apps.chain.services import registration_request

    settings.CHAIN_OVERRIDES = {tester_chain.caip2: {"max_base_fee_gwei": 0.000000001}}
    registration = registration_request(content=ready_content, caip2=tester_chain.caip2)
    with django_capture_on_commit_callbacks() as callbacks:
        registration_advance(registration_id=registration.pk)
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.WAITING_GAS
    assert "above this chain's ceiling" in registration.error
    (again,) = [c for c in callbacks if getattr(c, "task", None) is chain_registration_advance]
    assert again.options["countdown"] == 300
    settings.CHAIN_OVERRIDES = {}
    registration = advance_until_done(registration.pk, django_capture_on_commit_callbacks)
    assert registration.status == RegistrationStatus.CONFIRMED


def test_gas_samples(tester_chain, deployed):
    from apps.chain.services import gas_sample

    sample = gas_sample(caip2=tester_chain.caip2)
    assert sample.block_number == tester_chain.web3.eth.block_number
    assert sample.base_fee_per_gas > 0


def test_the_editor_names_the_chain_of_each_registration(ready_content, deployed, tester_chain):
    from django.test import Client

    from apps.chain.models import ChainContract, ContractKind

    Registration.objects.create(
        content=ready_content,
        chain=tester_chain.caip2,
        contract=ChainContract.objects.get(chain=tester_chain.caip2, kind=ContractKind.REGISTRY),
        status=RegistrationStatus.CONFIRMED,
    )
    browser = Client()
    browser.force_login(ready_content.owner)
    page = browser.get(f"/studio/{ready_content.id}/").content.decode()
    assert f"{tester_chain.caip2}: confirmed" in page
