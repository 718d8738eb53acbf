"""Against a real JSON-RPC node over HTTP (npx hardhat node, offline, chain 31337): deploying,
registering with stuck-transaction replacement, the indexer through a reorganisation made with
evm_snapshot / evm_revert / evm_mine, range halving behind a refusing proxy, and --follow."""

import io
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from eth_account import Account

from apps.chain.chains import contract_for, web3_for
from apps.chain.indexer import index_chain
from apps.chain.models import ChainContract, ChainEvent, ContractKind, RegistrationStatus
from apps.chain.services import content_id_bytes32, registration_advance, registration_request
from tests.factories import registrable_content
from tests.support.jsonrpc import (
    HARDHAT_KEYS,
    InterceptingProxy,
    RefusingProxy,
    rpc,
)
from tests.support.processes import ROOT, embedded_env

HARDHAT = "eip155:31337"


@pytest.fixture
def hardhat(node, settings):
    settings.CHAIN_RPC_URLS = {HARDHAT: node}
    settings.CHAIN_SIGNER_KEY = HARDHAT_KEYS[0]
    settings.CHAIN_OVERRIDES = {}
    return node


def deploy(kinds: str = "") -> dict[str, ChainContract]:
    out = io.StringIO()
    args = ["--chain", HARDHAT] + (["--with-test-tokens"] if kinds else [])
    call_command("deploy_contracts", *args, stdout=out)
    return {c.kind: c for c in ChainContract.objects.filter(chain=HARDHAT).order_by("-pk")}


def mint_as(contract, to: str, key: str) -> None:
    web3 = contract.w3
    account = Account.from_key(key)
    tx = contract.functions.mint(to).build_transaction(
        {
            "from": account.address,
            "nonce": web3.eth.get_transaction_count(account.address),
        }
    )
    web3.eth.wait_for_transaction_receipt(
        web3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    )


@pytest.mark.django_db
def test_deploy_contracts_records_addresses(hardhat):
    out = io.StringIO()
    call_command("deploy_contracts", "--chain", HARDHAT, "--with-test-tokens", stdout=out)
    kinds = set(ChainContract.objects.filter(chain=HARDHAT).values_list("kind", flat=True))
    assert kinds == {
        ContractKind.REGISTRY,
        ContractKind.NFT721,
        ContractKind.NFT1155,
        ContractKind.TOKEN,
    }
    printed = out.getvalue()
    for record in ChainContract.objects.filter(chain=HARDHAT):
        assert record.address in printed
        assert web3_for(HARDHAT).eth.get_code(record.address) != b""
    assert HARDHAT_KEYS[0][2:] not in printed  # the key is never printed


@pytest.mark.django_db
def test_deploy_without_a_key_says_so(hardhat, settings):
    from django.core.management import CommandError

    settings.CHAIN_SIGNER_KEY = ""
    with pytest.raises(CommandError, match="Set CHAIN_SIGNER_KEY"):
        call_command("deploy_contracts", "--chain", HARDHAT)


@pytest.mark.django_db
def test_reorganisation_over_json_rpc(hardhat):
    contracts = deploy("tokens")
    web3 = web3_for(HARDHAT)
    nft = contract_for(web3, "TestNFT721", contracts[ContractKind.NFT721].address)
    holder, other = (
        Account.from_key(HARDHAT_KEYS[1]).address,
        Account.from_key(HARDHAT_KEYS[2]).address,
    )
    index_chain(caip2=HARDHAT)
    snapshot = rpc(hardhat, "evm_snapshot")

    mint_as(nft, holder, HARDHAT_KEYS[0])
    index_chain(caip2=HARDHAT)
    assert ChainEvent.objects.filter(chain=HARDHAT, name="Transfer").count() == 1

    assert rpc(hardhat, "evm_revert", [snapshot]) is True
    mint_as(nft, other, HARDHAT_KEYS[0])
    for _ in range(3):
        rpc(hardhat, "evm_mine")
    report = index_chain(caip2=HARDHAT)

    assert report.reorgs == 1
    (transfer,) = ChainEvent.objects.filter(chain=HARDHAT, name="Transfer")
    assert transfer.args["to"] == other
    assert transfer.block_hash == web3.eth.get_block(transfer.block_number)["hash"].to_0x_hex()


@pytest.mark.django_db
def test_range_halving_behind_a_refusing_provider(hardhat, settings):
    contracts = deploy("tokens")
    web3 = web3_for(HARDHAT)
    nft = contract_for(web3, "TestNFT721", contracts[ContractKind.NFT721].address)
    start = web3.eth.block_number
    for _ in range(6):
        mint_as(nft, Account.from_key(HARDHAT_KEYS[1]).address, HARDHAT_KEYS[0])
        rpc(hardhat, "evm_mine")
    with RefusingProxy(hardhat, max_span=3) as proxy:
        settings.CHAIN_RPC_URLS = {HARDHAT: proxy.url}
        report = index_chain(caip2=HARDHAT)
    assert proxy.refused > 0
    assert report.ranges_halved > 0
    assert report.indexed_to >= start + 12
    assert ChainEvent.objects.filter(chain=HARDHAT, name="Transfer").count() == 6


@pytest.mark.django_db
def test_a_stuck_registration_is_replaced_with_higher_fees(
    hardhat, settings, media_root, django_capture_on_commit_callbacks
):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    deploy()
    content = registrable_content()
    content.source_path = default_storage.save(f"sources/{content.id}/v.mp4", ContentFile(b"v"))
    content.save()
    settings.CHAIN_STUCK_AFTER_SECONDS = 0
    rpc(hardhat, "evm_setAutomine", [False])
    try:
        registration = registration_request(content=content, caip2=HARDHAT)
        with django_capture_on_commit_callbacks():
            registration_advance(registration_id=registration.pk)  # sent, not mined
            registration.refresh_from_db()
            first_tx, first_fee = registration.tx_hash, registration.max_fee_per_gas
            registration_advance(registration_id=registration.pk)  # stuck: replaced
        registration.refresh_from_db()
        assert registration.replaced_tx_hashes == [first_tx]
        assert registration.max_fee_per_gas > first_fee * 110 / 100
        assert registration.nonce is not None
        rpc(hardhat, "evm_mine")
    finally:
        rpc(hardhat, "evm_setAutomine", [True])
    with django_capture_on_commit_callbacks():
        registration_advance(registration_id=registration.pk)
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.CONFIRMED
    assert registration.tx_hash != first_tx  # the replacement is the one mined
    registry = contract_for(web3_for(HARDHAT), "ContentRegistry", registration.contract.address)
    assert (
        registry.functions.contentOf(content_id_bytes32(content.id)).call()[1] == registration.cid
    )


@pytest.mark.django_db(transaction=True)
def test_index_chain_follow_over_http(hardhat, tmp_path):
    contracts = deploy("tokens")
    nft = contract_for(web3_for(HARDHAT), "TestNFT721", contracts[ContractKind.NFT721].address)
    db = django_settings.DATABASES["default"]
    env = embedded_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="streamgate.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=django_settings.REDIS_URL,
        CHAIN_RPC_URLS=f'{{"{HARDHAT}": "{hardhat}"}}',
    )
    follower = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "index_chain",
            "--chain",
            HARDHAT,
            "--follow",
            "--interval",
            "0.5",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(3)
        mint_as(nft, Account.from_key(HARDHAT_KEYS[1]).address, HARDHAT_KEYS[0])
        deadline = time.monotonic() + 30
        while not ChainEvent.objects.filter(chain=HARDHAT, name="Transfer").exists():
            assert time.monotonic() < deadline, "the follower never indexed the mint"
            assert follower.poll() is None, follower.stdout.read()
            time.sleep(0.3)
    finally:
        follower.terminate()
        output = follower.communicate(timeout=10)[0]
    assert f"{HARDHAT}: indexed to" in output


@pytest.mark.django_db
def test_a_reorganisation_in_the_middle_of_a_batch_is_caught(hardhat, settings):
    """The chain reorganises after eth_getLogs answered and before the batch is stored: the
    stale logs must not be stored, and the new branch must be."""
    contracts = deploy("tokens")
    web3 = web3_for(HARDHAT)
    nft = contract_for(web3, "TestNFT721", contracts[ContractKind.NFT721].address)
    holder = Account.from_key(HARDHAT_KEYS[1]).address
    other = Account.from_key(HARDHAT_KEYS[2]).address
    index_chain(caip2=HARDHAT)
    snapshot = rpc(hardhat, "evm_snapshot")
    mint_as(nft, holder, HARDHAT_KEYS[0])  # branch A
    fired = []

    def reorganise(call):
        if call["method"] == "eth_getLogs" and not fired:
            fired.append(call)
            rpc(hardhat, "evm_revert", [snapshot])  # branch B replaces A under the indexer
            mint_as(nft, other, HARDHAT_KEYS[0])
            rpc(hardhat, "evm_mine")

    with InterceptingProxy(hardhat, after=reorganise) as proxy:
        settings.CHAIN_RPC_URLS = {HARDHAT: proxy.url}
        report = index_chain(caip2=HARDHAT)
    assert fired
    assert report.stale_batches == 1
    (transfer,) = ChainEvent.objects.filter(chain=HARDHAT, name="Transfer")
    assert transfer.args["to"] == other
    assert transfer.block_hash == web3.eth.get_block(transfer.block_number)["hash"].to_0x_hex()


@pytest.mark.django_db
def test_an_unreachable_node_is_not_a_reorganisation(hardhat, settings):
    contracts = deploy("tokens")
    web3 = web3_for(HARDHAT)
    nft = contract_for(web3, "TestNFT721", contracts[ContractKind.NFT721].address)
    mint_as(nft, Account.from_key(HARDHAT_KEYS[1]).address, HARDHAT_KEYS[0])
    index_chain(caip2=HARDHAT)
    kept = ChainEvent.objects.filter(chain=HARDHAT).count()

    def failing(call):
        if call["method"] == "eth_getBlockByNumber":
            return {"code": -32000, "message": "upstream timeout"}
        return None

    with InterceptingProxy(hardhat, before=failing) as proxy:
        settings.CHAIN_RPC_URLS = {HARDHAT: proxy.url}
        with pytest.raises(Exception, match="upstream timeout"):
            index_chain(caip2=HARDHAT)
    assert ChainEvent.objects.filter(chain=HARDHAT).count() == kept


@pytest.mark.django_db
def test_a_wrong_chain_behind_a_url_is_refused(hardhat, settings):
    from apps.chain.chains import ChainNotConfigured

    settings.CHAIN_RPC_URLS = {"eip155:1": hardhat}  # a local node is not Ethereum mainnet
    with pytest.raises(ChainNotConfigured, match="serves chain id 31337, not 1"):
        web3_for("eip155:1")


@pytest.mark.django_db
def test_an_unfunded_signer_fails_clearly_and_keeps_its_nonce(
    hardhat, settings, media_root, django_capture_on_commit_callbacks
):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from apps.chain.models import SignerNonce

    deploy()  # with the funded key
    registry = ChainContract.objects.get(chain=HARDHAT, kind=ContractKind.REGISTRY)
    poor = Account.create()
    registry_contract = contract_for(web3_for(HARDHAT), "ContentRegistry", registry.address)
    web3 = web3_for(HARDHAT)
    owner = Account.from_key(HARDHAT_KEYS[0])
    tx = registry_contract.functions.setRegistrar(poor.address, True).build_transaction(
        {"from": owner.address, "nonce": web3.eth.get_transaction_count(owner.address)}
    )
    web3.eth.wait_for_transaction_receipt(
        web3.eth.send_raw_transaction(owner.sign_transaction(tx).raw_transaction)
    )
    SignerNonce.objects.filter(chain=HARDHAT).delete()
    settings.CHAIN_SIGNER_KEY = poor.key.to_0x_hex()
    content = registrable_content()
    content.source_path = default_storage.save(f"sources/{content.id}/v.mp4", ContentFile(b"v"))
    content.save()
    registration = registration_request(content=content, caip2=HARDHAT)
    with django_capture_on_commit_callbacks():
        registration_advance(registration_id=registration.pk)
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.FAILED
    assert f"The signer {poor.address} lacks" in registration.error
    assert not SignerNonce.objects.filter(chain=HARDHAT, address=poor.address).exists()
