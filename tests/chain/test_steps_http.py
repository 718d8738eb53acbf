"""A registration step over real JSON-RPC (npx hardhat node behind a slow, watching proxy):
no database lock is held while the node is asked anything, a duplicate delivery sends nothing,
and a transaction is broadcast only once its nonce and hash are committed."""

import threading
import time

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from eth_account import Account
from web3 import Web3

from apps.chain.models import Registration, RegistrationStatus
from apps.chain.services import registration_advance, registration_request
from tests.chain.test_hardhat import HARDHAT, deploy
from tests.factories import registrable_content
from tests.support.jsonrpc import HARDHAT_KEYS, InterceptingProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hardhat(node, settings, media_root):
    settings.CHAIN_RPC_URLS = {HARDHAT: node}
    settings.CHAIN_SIGNER_KEY = HARDHAT_KEYS[0]
    settings.CHAIN_OVERRIDES = {}
    deploy()
    return node


@pytest.fixture
def content(media_root):
    content = registrable_content()
    content.source_path = default_storage.save(f"sources/{content.id}/v.mp4", ContentFile(b"v"))
    content.save()
    return content


def other_connection() -> psycopg.Connection:
    """A second session on the test database, as another worker would have."""
    db = django_settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=False
    )


def locked(session: psycopg.Connection, sql: str, params: list) -> bool:
    """Whether ``SELECT … FOR UPDATE NOWAIT`` finds a row locked by someone else."""
    try:
        session.execute(sql + " FOR UPDATE NOWAIT", params)
        return False
    except psycopg.errors.LockNotAvailable:
        return True
    finally:
        session.rollback()


def advance_until_settled(registration_id: int) -> Registration:
    for _ in range(10):
        registration = registration_advance(registration_id=registration_id)
        if registration.status in (RegistrationStatus.CONFIRMED, RegistrationStatus.FAILED):
            return registration
    raise AssertionError("registration never settled")


def test_no_lock_is_held_while_the_node_is_asked(hardhat, content, settings):
    registration = registration_request(content=content, caip2=HARDHAT)
    seen: list[tuple[str, bool, bool]] = []
    with other_connection() as session:

        def before(call):
            # The step waits for this answer: meanwhile another worker can lock what it likes.
            seen.append(
                (
                    call["method"],
                    locked(
                        session,
                        "SELECT id FROM chain_registration WHERE id = %s",
                        [registration.pk],
                    ),
                    locked(session, "SELECT id FROM chain_signernonce", []),
                )
            )
            time.sleep(0.05)  # a slow node

        with InterceptingProxy(hardhat, before=before) as proxy:
            settings.CHAIN_RPC_URLS = {HARDHAT: proxy.url}
            registration = advance_until_settled(registration.pk)
    assert registration.status == RegistrationStatus.CONFIRMED, registration.error
    methods = {method for method, _, _ in seen}
    assert {
        "eth_estimateGas",
        "eth_getBalance",
        "eth_getTransactionCount",
        "eth_sendRawTransaction",
        "eth_getTransactionReceipt",
    } <= methods
    assert [call for call in seen if call[1] or call[2]] == []


def test_a_duplicate_delivery_sends_no_second_transaction(hardhat, content, settings):
    registration = registration_request(content=content, caip2=HARDHAT)
    signer = Account.from_key(HARDHAT_KEYS[0]).address  # the registrar
    sent: list[str] = []
    first_call = threading.Event()

    def before(call):
        if call["method"] == "eth_sendRawTransaction":
            sent.append(call["params"][0])
        first_call.set()
        time.sleep(0.3)  # a slow node: the duplicate arrives while the first step waits

    results: dict[str, str] = {}

    def deliver(name: str) -> None:
        try:
            results[name] = registration_advance(registration_id=registration.pk).status
        finally:
            connection.close()

    with InterceptingProxy(hardhat, before=before) as proxy:
        settings.CHAIN_RPC_URLS = {HARDHAT: proxy.url}
        nonce_before = Web3(Web3.HTTPProvider(hardhat)).eth.get_transaction_count(signer)
        first = threading.Thread(target=deliver, args=("first",))
        first.start()
        assert first_call.wait(30)
        started = time.monotonic()
        deliver("duplicate")
        duplicate_took = time.monotonic() - started
        first.join(60)
    assert results == {"first": "submitted", "duplicate": "pending"}
    assert duplicate_took < 0.3  # it found the lease taken and did not wait for the first
    assert len(sent) == 1
    web3 = Web3(Web3.HTTPProvider(hardhat))
    assert web3.eth.get_transaction_count(signer) == nonce_before + 1
    settings.CHAIN_RPC_URLS = {HARDHAT: hardhat}
    assert advance_until_settled(registration.pk).status == RegistrationStatus.CONFIRMED


def test_a_transaction_is_broadcast_after_its_nonce_and_hash_are_committed(
    hardhat, content, settings
):
    registration = registration_request(content=content, caip2=HARDHAT)
    committed: list[tuple] = []
    with other_connection() as session:

        def before(call):
            if call["method"] == "eth_sendRawTransaction":
                row = session.execute(
                    "SELECT status, tx_hash, nonce FROM chain_registration WHERE id = %s",
                    [registration.pk],
                ).fetchone()
                session.rollback()
                raw = bytes.fromhex(call["params"][0].removeprefix("0x"))
                committed.append((row, Web3.keccak(raw).to_0x_hex()))

        with InterceptingProxy(hardhat, before=before) as proxy:
            settings.CHAIN_RPC_URLS = {HARDHAT: proxy.url}
            registration = advance_until_settled(registration.pk)
    ((row, sent_hash),) = committed
    assert row == ("submitted", sent_hash, registration.nonce)
    assert registration.tx_hash == sent_hash
