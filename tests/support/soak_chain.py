"""The soak benchmark's chain (tests/benchmarks/soak.py): ``npx hardhat node`` with an ERC-721
collection whose tokens the soak's wallets hold, so that their sign-ins are followed by gate
decisions that ask the chain, through two RPC providers (proxies to the one node) that can be
taken away one at a time."""

import json
from pathlib import Path

from tests.support.processes import ROOT

CHAIN = "eip155:31337"


def wallet_keys(count: int) -> list[str]:
    """Private keys of the soak's wallets: fixed, so a run can be repeated."""
    return ["0x" + (0x50A0 + index).to_bytes(32, "big").hex() for index in range(count)]


def collection_for(url: str, keys: list[str]) -> str:
    """Deploy TestNFT721 on the node at ``url`` from its first (unlocked) account and mint one
    token to each wallet of ``keys``; the collection's address."""
    from eth_account import Account
    from web3 import Web3

    web3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    built = json.loads(Path(ROOT / "contracts" / "build" / "TestNFT721.json").read_text())
    owner = web3.eth.accounts[0]
    factory = web3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
    receipt = web3.eth.wait_for_transaction_receipt(
        factory.constructor("Soak pass", "SOAK").transact({"from": owner})
    )
    nft = web3.eth.contract(address=receipt["contractAddress"], abi=built["abi"])
    hashes = [
        nft.functions.mint(Account.from_key(key).address).transact({"from": owner}) for key in keys
    ]
    for tx in hashes:
        web3.eth.wait_for_transaction_receipt(tx)
    return receipt["contractAddress"]
