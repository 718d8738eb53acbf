"""An in-process py-evm chain configured as StreamGate's eth-tester chain, with our contracts
deployed: fixtures for the chain and access tests (registered in tests/conftest.py)."""

import uuid
from dataclasses import dataclass

import pytest
from web3 import Web3

from apps.chain.chains import ETH_TESTER_CHAIN_ID, eth_tester, web3_for
from apps.chain.models import ContractKind
from apps.chain.services import contract_deploy

TESTER = f"eip155:{ETH_TESTER_CHAIN_ID}"
# eth-tester's funded accounts have the private keys 1, 2, 3, …
SIGNER_KEY = "0x" + "00" * 31 + "01"


@dataclass
class TesterChain:
    caip2: str
    tester: object
    web3: Web3

    @property
    def accounts(self) -> list[str]:
        return self.web3.eth.accounts

    def mine(self, blocks: int = 1) -> None:
        self.tester.mine_blocks(blocks)


@pytest.fixture
def tester_chain(settings) -> TesterChain:
    """A fresh in-process py-evm chain, configured as StreamGate's eth-tester chain."""
    name = uuid.uuid4().hex
    settings.CHAIN_RPC_URLS = {TESTER: f"eth-tester://{name}"}
    settings.CHAIN_SIGNER_KEY = SIGNER_KEY
    settings.CHAIN_OVERRIDES = {}
    return TesterChain(caip2=TESTER, tester=eth_tester(name), web3=web3_for(TESTER))


@dataclass
class Deployed:
    registry: object
    nft721: object
    nft1155: object


@pytest.fixture
def deployed(tester_chain, db) -> Deployed:
    from apps.chain.chains import contract_for

    web3 = tester_chain.web3
    records = {
        kind: contract_deploy(caip2=tester_chain.caip2, kind=kind, args=args)
        for kind, args in (
            (ContractKind.REGISTRY, ()),
            (ContractKind.NFT721, ("Pass", "PASS")),
            (ContractKind.NFT1155, ("https://example.invalid/{id}.json",)),
        )
    }
    return Deployed(
        registry=contract_for(web3, "ContentRegistry", records[ContractKind.REGISTRY].address),
        nft721=contract_for(web3, "TestNFT721", records[ContractKind.NFT721].address),
        nft1155=contract_for(web3, "TestNFT1155", records[ContractKind.NFT1155].address),
    )


def send(function, sender: str):
    """Transact with an eth-tester account and return the receipt."""
    web3 = function.w3
    return web3.eth.wait_for_transaction_receipt(function.transact({"from": sender}))


def deploy_artifact(web3: Web3, name: str, *args, sender: str | None = None):
    """Deploy contracts/build/<name>.json from an eth-tester account; returns the contract."""
    from apps.chain.chains import artifact, contract_for

    compiled = artifact(name)
    factory = web3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"])
    tx = factory.constructor(*args).transact({"from": sender or web3.eth.accounts[0]})
    receipt = web3.eth.wait_for_transaction_receipt(tx)
    return contract_for(web3, name, receipt["contractAddress"])
