"""The Solidity contracts on a real EVM (py-evm), from the committed artifacts."""

import json
import subprocess
from pathlib import Path

import pytest
from eth_tester.exceptions import TransactionFailed

from apps.chain.chains import ARTIFACTS, artifact
from apps.chain.transactions import decode_revert
from tests.support.evm import send

pytestmark = pytest.mark.django_db

CONTRACTS = Path(ARTIFACTS).parent
CONTENT = b"\x00" * 16 + bytes.fromhex("0123456789abcdef0123456789abcdef")
GATE = bytes.fromhex("ab" * 32)


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory):
    """The sources compiled now (solc-js, the same script and settings) into a temp folder."""
    out = tmp_path_factory.mktemp("build")
    subprocess.run(
        ["node", "compile.mjs", "--out", str(out)],
        cwd=CONTRACTS,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def test_artifacts_are_built_from_the_current_sources(fresh_build):
    committed = sorted(p.name for p in Path(ARTIFACTS).glob("*.json"))
    assert committed == sorted(p.name for p in fresh_build.glob("*.json")), (
        "contracts/build/ does not match contracts/src/: run `make contracts` and commit"
    )
    for name in committed:
        built = json.loads((fresh_build / name).read_text())
        stored = artifact(name.removesuffix(".json"))
        for key in ("abi", "bytecode", "deployedBytecode", "compiler", "settings", "sourceHash"):
            assert stored[key] == built[key], (
                f"contracts/build/{name} is stale ({key}): run `make contracts` and commit"
            )
    assert artifact("ContentRegistry")["compiler"].startswith("solc-js 0.8.28")


def test_register_emits_an_event_with_the_cid(deployed, tester_chain):
    registrar, creator = tester_chain.accounts[:2]  # the deployer is the first registrar
    call = deployed.registry.functions.register(CONTENT, creator, "bafkreiabc", 5, GATE)
    (event,) = deployed.registry.events.ContentRegistered().process_receipt(send(call, registrar))
    assert event.args.contentId == CONTENT
    assert event.args.creator == creator
    assert (event.args.cid, event.args.price, event.args.gateHash) == ("bafkreiabc", 5, GATE)
    stored = deployed.registry.functions.contentOf(CONTENT).call()
    assert stored[:4] == [creator, "bafkreiabc", 5, GATE]


def test_only_registrars_register(deployed, tester_chain):
    """Content ids are public: an open register would let anyone squat one."""
    owner, stranger = tester_chain.accounts[0], tester_chain.accounts[5]
    with pytest.raises(TransactionFailed) as raised:
        deployed.registry.functions.register(CONTENT, stranger, "bafk", 0, GATE).transact(
            {"from": stranger}
        )
    assert decode_revert(raised.value, ("ContentRegistry",)) == "NotRegistrar"
    send(deployed.registry.functions.setRegistrar(stranger, True), owner)
    send(deployed.registry.functions.register(CONTENT, stranger, "bafk", 0, GATE), stranger)
    with pytest.raises(TransactionFailed):  # only the owner names registrars
        deployed.registry.functions.setRegistrar(stranger, False).transact({"from": stranger})


@pytest.mark.parametrize(
    "content_id",
    [CONTENT, b"\x00" * 16 + b"'" * 16, b"\x00" * 16 + b'"\\' * 8],
    ids=["plain", "single-quotes", "double-quotes-and-backslashes"],
)
def test_registering_twice_reverts_with_already_registered(deployed, tester_chain, content_id):
    """The revert data carries the content id; whatever bytes it holds, the error is named."""
    registrar, creator = tester_chain.accounts[:2]
    send(deployed.registry.functions.register(content_id, creator, "bafk1", 0, GATE), registrar)
    with pytest.raises(TransactionFailed) as raised:
        deployed.registry.functions.register(content_id, creator, "bafk2", 0, GATE).transact(
            {"from": registrar}
        )
    assert decode_revert(raised.value, ("ContentRegistry",)) == "AlreadyRegistered"


def test_only_the_creator_or_a_registrar_grants_access(deployed, tester_chain):
    registrar, creator, viewer, stranger = tester_chain.accounts[:4]
    send(deployed.registry.functions.register(CONTENT, creator, "bafk", 0, GATE), registrar)
    with pytest.raises(TransactionFailed) as raised:
        deployed.registry.functions.grantAccess(CONTENT, viewer, 2**40).transact({"from": stranger})
    assert decode_revert(raised.value, ("ContentRegistry",)) == "NotCreator"
    receipt = send(deployed.registry.functions.grantAccess(CONTENT, viewer, 2**40), creator)
    (event,) = deployed.registry.events.AccessGranted().process_receipt(receipt)
    assert (event.args.viewer, event.args.expiresAt) == (viewer, 2**40)
    assert deployed.registry.functions.hasAccess(CONTENT, viewer).call() is True
    assert deployed.registry.functions.hasAccess(CONTENT, stranger).call() is False
    send(deployed.registry.functions.grantAccess(CONTENT, viewer, 0), registrar)  # revoked
    assert deployed.registry.functions.hasAccess(CONTENT, viewer).call() is False


def test_bad_registrations_revert_with_their_reason(deployed, tester_chain):
    registrar, creator = tester_chain.accounts[:2]
    with pytest.raises(TransactionFailed) as unknown:
        deployed.registry.functions.grantAccess(CONTENT, creator, 1).transact({"from": registrar})
    assert decode_revert(unknown.value, ("ContentRegistry",)) == "UnknownContent"
    with pytest.raises(TransactionFailed) as empty:
        deployed.registry.functions.register(CONTENT, creator, "", 0, GATE).transact(
            {"from": registrar}
        )
    assert decode_revert(empty.value, ("ContentRegistry",)) == "EmptyCid"
    with pytest.raises(TransactionFailed) as nobody:
        deployed.registry.functions.register(CONTENT, "0x" + "00" * 20, "bafk", 0, GATE).transact(
            {"from": registrar}
        )
    assert decode_revert(nobody.value, ("ContentRegistry",)) == "NoCreator"


def test_test_tokens(deployed, tester_chain):
    owner, holder = tester_chain.accounts[0], tester_chain.accounts[4]
    send(deployed.nft721.functions.mint(holder), owner)
    assert deployed.nft721.functions.ownerOf(1).call() == holder
    send(deployed.nft1155.functions.mint(holder, 7, 3), owner)
    assert deployed.nft1155.functions.balanceOf(holder, 7).call() == 3
    with pytest.raises(TransactionFailed):
        deployed.nft721.functions.mint(holder).transact({"from": holder})  # only the owner
