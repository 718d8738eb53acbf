"""Gas of the access market's transactions, on py-evm and on a Hardhat node, against the goals.

    .venv/bin/python tests/benchmarks/market_gas.py

On each chain (an in-process py-evm chain, then ``npx hardhat node``) deploys ContentRegistry
(5 % fee to a treasury) and two test dollars (TestTokenPlain: approve then buy; TestToken: EIP-2612
permit), has the creator sign offer sets (relayed by another account), and reads ``gasUsed`` from
the receipts of: setOffers (a first set of one offer, then three replacing it), setPayout, a
native purchase and an ERC-20 purchase by approve, each the first-ever sale (every balance it
writes starts at zero) and a typical one (the creator's, the treasury's and the registry's
balances already non-zero, the buyer holding more than the price and approving it exactly),
a permit purchase (the buyer's first permit), and withdraw (native and ERC-20).
Baseline in the same run, on the same chain: a plain ETH transfer and a plain ERC-20
``transferFrom`` of the same token (holder and recipient already holding some, an exact
allowance), so each purchase is also shown over the bare payment it wraps.
Goal: a typical native purchase < 80,000 gas, a typical ERC-20 purchase < 110,000; the script
exits 1 when one is missed on either chain.
"""

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from web3 import EthereumTesterProvider, Web3  # noqa: E402

from apps.chain.typed_data import (  # noqa: E402
    KIND_ACCESS,
    KIND_MEMBERSHIP,
    NATIVE,
    Terms,
    permit_typed_data,
    set_offers_typed_data,
    set_payout_typed_data,
    typed_data_sign,
)
from tests.support.jsonrpc import hardhat_node  # noqa: E402

GOALS = {"native purchase": 80_000, "ERC-20 purchase (approve)": 110_000}
# One content per way of paying, so that every purchase measured is its buyer's first of it.
NATIVE_CONTENT, TOKEN_CONTENT, PERMIT_CONTENT = (b"\x00" * 31 + bytes([n]) for n in (1, 2, 3))
USD = 10**6
FEE_BPS = 500
HARDHAT_MNEMONIC = "test test test test test test test test test test test junk"
# Roles by account index; the creator and the permit buyer sign, so their keys are needed.
OWNER, CREATOR, PERMIT_BUYER, FIRST_BUYER, BUYER, TREASURY, HOLDER = range(7)


def deploy(web3: Web3, name: str, *args):
    compiled = json.loads((ROOT / "contracts" / "build" / f"{name}.json").read_text())
    factory = web3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"])
    receipt = wait(web3, factory.constructor(*args).transact({"from": web3.eth.accounts[0]}))
    return web3.eth.contract(address=receipt["contractAddress"], abi=compiled["abi"])


def wait(web3: Web3, tx_hash):
    receipt = web3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt


def gas(function, sender: str, value: int = 0) -> int:
    return wait(function.w3, function.transact({"from": sender, "value": value}))["gasUsed"]


def measure(web3: Web3, keys: dict[int, str]) -> dict[str, int]:
    """Every measured transaction's gas on this chain, by name."""
    accounts = web3.eth.accounts
    owner, creator = accounts[OWNER], accounts[CREATOR]
    chain_id, now = web3.eth.chain_id, web3.eth.get_block("latest")["timestamp"]
    registry = deploy(web3, "ContentRegistry")
    plain = deploy(web3, "TestTokenPlain", "Plain USD", "pUSD")
    usd = deploy(web3, "TestToken", "Test USD", "tUSD", 6)
    for content in (NATIVE_CONTENT, TOKEN_CONTENT, PERMIT_CONTENT):
        gas(registry.functions.register(content, creator, "bafk", 0, b"\x00" * 32), owner)
    gas(registry.functions.setTreasury(accounts[TREASURY]), owner)
    gas(registry.functions.setFee(FEE_BPS), owner)
    for index in (PERMIT_BUYER, FIRST_BUYER, BUYER, HOLDER):
        gas(plain.functions.mint(accounts[index], 1_000 * USD), owner)
        gas(usd.functions.mint(accounts[index], 1_000 * USD), owner)

    def set_offers(content: bytes, terms: list[Terms]) -> tuple[int, list[int]]:
        nonce = registry.functions.nonces(creator).call()
        typed = set_offers_typed_data(
            chain_id=chain_id,
            registry=registry.address,
            content_id=content,
            terms=terms,
            nonce=nonce,
            deadline=now + 86_400,
        )
        call = registry.functions.setOffers(
            content,
            [t.as_tuple() for t in terms],
            nonce,
            now + 86_400,
            typed_data_sign(typed, keys[CREATOR]),
        )
        used = gas(call, owner)  # relayed: the creator pays nothing
        first = registry.functions.nextOfferId().call() - len(terms)
        return used, list(range(first, first + len(terms)))

    results: dict[str, int] = {}
    eth, dollars = 10**16, 2 * USD
    first_set = [Terms(KIND_ACCESS, NATIVE, 1, 0)]
    results["setOffers: 1 offer, first set"], _ = set_offers(NATIVE_CONTENT, first_set)
    results["setOffers: 3 offers, replacing 1"], (native, _, _) = set_offers(
        NATIVE_CONTENT,
        [
            Terms(KIND_ACCESS, NATIVE, eth, 0),
            Terms(KIND_ACCESS, NATIVE, eth // 10, 86_400),
            Terms(KIND_MEMBERSHIP, NATIVE, eth, 30 * 86_400),
        ],
    )
    _, (token,) = set_offers(TOKEN_CONTENT, [Terms(KIND_ACCESS, plain.address, dollars, 0)])
    _, (permitted,) = set_offers(PERMIT_CONTENT, [Terms(KIND_ACCESS, usd.address, dollars, 0)])
    payout_typed = set_payout_typed_data(
        chain_id=chain_id,
        registry=registry.address,
        creator=creator,
        payout=creator,
        nonce=registry.functions.nonces(creator).call(),
        deadline=now + 86_400,
    )
    results["setPayout"] = gas(
        registry.functions.setPayout(
            creator,
            creator,
            payout_typed["message"]["nonce"],
            now + 86_400,
            typed_data_sign(payout_typed, keys[CREATOR]),
        ),
        owner,
    )

    first_buyer, buyer = accounts[FIRST_BUYER], accounts[BUYER]
    buy_native = registry.functions.buy(NATIVE_CONTENT, native, eth)
    results["native purchase, first-ever sale"] = gas(buy_native, first_buyer, eth)
    results["native purchase"] = gas(buy_native, buyer, eth)

    buy_token = registry.functions.buy(TOKEN_CONTENT, token, dollars)
    gas(plain.functions.approve(registry.address, dollars), first_buyer)
    results["ERC-20 purchase (approve), first-ever sale"] = gas(buy_token, first_buyer)
    results["ERC-20 approve (exact amount)"] = gas(
        plain.functions.approve(registry.address, dollars), buyer
    )
    results["ERC-20 purchase (approve)"] = gas(buy_token, buyer)

    # The permit token's first sale goes by approve, so the permit purchase is a typical sale.
    gas(usd.functions.approve(registry.address, dollars), first_buyer)
    gas(registry.functions.buy(PERMIT_CONTENT, permitted, dollars), first_buyer)
    permit_buyer = accounts[PERMIT_BUYER]
    permit = permit_typed_data(
        chain_id=chain_id,
        token=usd.address,
        token_name="Test USD",
        token_version="1",
        owner=permit_buyer,
        spender=registry.address,
        value=dollars,
        nonce=usd.functions.nonces(permit_buyer).call(),
        deadline=now + 86_400,
    )
    signature = typed_data_sign(permit, keys[PERMIT_BUYER])
    results["permit purchase (buyer's first permit)"] = gas(
        registry.functions.buyWithPermit(
            PERMIT_CONTENT,
            permitted,
            dollars,
            now + 86_400,
            signature[64],
            signature[:32],
            signature[32:64],
        ),
        permit_buyer,
    )
    if usd.functions.nonces(permit_buyer).call() != 1:
        raise RuntimeError("the permit was not used: the measure is of another path")

    results["withdraw, native"] = gas(registry.functions.withdraw(creator, NATIVE), owner)
    results["withdraw, ERC-20"] = gas(registry.functions.withdraw(creator, plain.address), owner)

    # The bare payments, same chain, same token: holder and recipient already hold some.
    results["baseline: ETH transfer"] = wait(
        web3, web3.eth.send_transaction({"from": owner, "to": accounts[HOLDER], "value": eth})
    )["gasUsed"]
    gas(plain.functions.approve(owner, dollars), accounts[HOLDER])
    results["baseline: ERC-20 transferFrom"] = gas(
        plain.functions.transferFrom(accounts[HOLDER], first_buyer, dollars), owner
    )
    return results


def py_evm() -> dict[str, int]:
    from eth_tester import EthereumTester, PyEVMBackend

    web3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
    # eth-tester's accounts have the private keys 1, 2, 3, …
    keys = {index: "0x" + (index + 1).to_bytes(32, "big").hex() for index in range(7)}
    return measure(web3, keys)


def hardhat() -> dict[str, int]:
    from eth_account import Account

    # The node's accounts come from Hardhat's well-known test mnemonic.
    Account.enable_unaudited_hdwallet_features()
    keys = {
        index: Account.from_mnemonic(
            HARDHAT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
        ).key.to_0x_hex()
        for index in (CREATOR, PERMIT_BUYER)
    }
    with (
        tempfile.TemporaryDirectory(prefix="sg-market-gas-") as folder,
        hardhat_node(Path(folder) / "hardhat.log") as url,
    ):
        web3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        return measure(web3, keys)


def main() -> None:
    chains = {"py-evm": py_evm(), "hardhat": hardhat()}
    names = list(chains["py-evm"])
    width = max(map(len, names)) + 2
    print(f"{'transaction':<{width}}" + "".join(f"{chain:>10}" for chain in chains))
    for name in names:
        print(f"{name:<{width}}" + "".join(f"{gas[name]:>10,}" for gas in chains.values()))
    print()
    missed = []
    bare = {
        "native purchase": "baseline: ETH transfer",
        "ERC-20 purchase (approve)": "baseline: ERC-20 transferFrom",
    }
    for chain, gas in chains.items():
        for name, goal in GOALS.items():
            used = gas[name]
            verdict = "meets" if used < goal else "MISSES"
            if used >= goal:
                missed.append(f"{name} on {chain}")
            first = gas[f"{name}, first-ever sale"]
            print(
                f"{chain}: {name} (typical sale) {used:,} gas, goal < {goal:,}: ratio to goal "
                f"{used / goal:.2f}, {verdict} the goal; over the bare payment "
                f"({gas[bare[name]]:,}) {used / gas[bare[name]]:.2f}x; "
                f"first-ever sale {first:,} ({first / goal:.2f} of the goal)"
            )
    if missed:
        raise SystemExit(f"gas goals missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
