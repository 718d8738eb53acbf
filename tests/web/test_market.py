"""Selling access in a real browser: an injected EIP-1193 wallet backed by real keys and the
in-process py-evm chain (its transactions signed here with eth_account and sent raw, its
typed data signed as wallets do). A viewer signs in, sees the prices, declines once, buys, and
follows the purchase (sent, mined, confirmed, indexed) to a playing video with no reload; a
creator signs offers in the wallet and sees them relaying, then live; the sales page shows the
purchase and withdraws through the wallet. The new UI fits a phone and passes axe-core."""

import json
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from tests.support.processes import ROOT
from tests.web.conftest import screenshot, wait_until
from tests.web.test_viewer import fast_ladder as fast_ladder  # its settings, as a fixture
from tests.web.test_viewer import off_the_loop

pytestmark = pytest.mark.django_db(transaction=True)

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"

# A wallet as MetaMask shows itself to a page: one account, a current chain it can switch
# (only to the chains it knows), and every signature or transaction answered by Python
# (sgWallet), where the keys are. Python answers {"result"} or {"error": {code, message}}.
WALLET_SHIM = """
(() => {
  const known = KNOWN_CHAINS;
  let chainId = START_CHAIN;
  const log = (entry) => { (window.sgWalletLog ||= []).push(entry); };
  async function ask(method, params) {
    const answer = await window.sgWallet(method, params || [], chainId);
    const { error } = answer;
    if (error) throw Object.assign(new Error(error.message), { code: error.code });
    return answer.result;
  }
  window.ethereum = {
    isShim: true,
    async request({ method, params }) {
      log(method);
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [ADDRESS];
      if (method === "eth_chainId") return chainId;
      if (method === "wallet_switchEthereumChain") {
        const wanted = params[0].chainId;
        log(`switch ${wanted}`);
        const unknown = Object.assign(new Error("Unrecognized chain ID"), { code: 4902 });
        if (!known.includes(wanted)) throw unknown;
        chainId = wanted;
        return null;
      }
      return ask(method, params);
    },
  };
})();
"""


def _integers(typed_data: dict[str, Any]) -> dict[str, Any]:
    """Wallets take decimal strings for uint fields (JSON numbers lose digits above 2**53);
    eth_account wants integers: convert by the types, as a wallet's encoder does."""
    types = typed_data["types"]

    def convert(value: Any, kind: str) -> Any:
        if kind.endswith("[]"):
            return [convert(item, kind[:-2]) for item in value]
        if kind in types:
            return {f["name"]: convert(value[f["name"]], f["type"]) for f in types[kind]}
        if kind.startswith(("uint", "int")) and isinstance(value, str):
            return int(value, 0)
        return value

    return {
        **typed_data,
        "domain": convert(typed_data["domain"], "EIP712Domain"),
        "message": convert(typed_data["message"], typed_data["primaryType"]),
    }


class Wallet:
    """The keys behind the page's window.ethereum, on the test's py-evm chain."""

    def __init__(self, page, key: str, web3, *, start_chain: int, known_chains: list[int]):
        self.account = Account.from_key(key)
        self.web3 = web3
        self.reject: set[str] = set()  # methods the user declines next time
        self.sent: list[str] = []
        self.signed: list[dict] = []
        page.expose_function("sgWallet", self.answer)
        page.add_init_script(
            WALLET_SHIM.replace("ADDRESS", repr(self.account.address.lower()))
            .replace("START_CHAIN", repr(hex(start_chain)))
            .replace("KNOWN_CHAINS", json.dumps([hex(chain) for chain in known_chains]))
        )

    @property
    def address(self) -> str:
        return self.account.address

    def answer(self, method: str, params: list, chain_hex: str) -> dict:
        if method in self.reject:
            self.reject.discard(method)
            return {"error": {"code": 4001, "message": "User rejected the request."}}
        handler = getattr(self, method, None)
        if handler is None or not method.startswith(("eth_", "personal_")):
            return {"error": {"code": 4200, "message": f"unsupported method {method}"}}
        return {"result": handler(params, int(chain_hex, 16))}

    @staticmethod
    def _hex(signature: bytes) -> str:
        text = signature.hex()
        return text if text.startswith("0x") else "0x" + text

    def personal_sign(self, params, chain_id):
        signed = Account.sign_message(encode_defunct(text=params[0]), self.account.key)
        return self._hex(signed.signature)

    def eth_signTypedData_v4(self, params, chain_id):  # noqa: N802 (the RPC method's name)
        address, payload = params
        assert address.lower() == self.address.lower(), "asked to sign for another account"
        typed_data = json.loads(payload)
        # MetaMask refuses typed data for another chain than the one it is on.
        assert int(str(typed_data["domain"]["chainId"]), 0) == chain_id
        self.signed.append(typed_data)
        signable = encode_typed_data(full_message=_integers(typed_data))
        return self._hex(Account.sign_message(signable, self.account.key).signature)

    def eth_sendTransaction(self, params, chain_id):  # noqa: N802
        tx = params[0]
        assert tx["from"].lower() == self.address.lower()
        if "chainId" in tx:  # as MetaMask does: a transaction for another chain is refused
            assert int(tx["chainId"], 16) == chain_id, (tx["chainId"], chain_id)
        web3 = self.web3
        fields = {
            "from": self.address,
            "to": web3.to_checksum_address(tx["to"]),
            "data": tx.get("data", "0x"),
            "value": int(tx.get("value") or "0x0", 16),
            "chainId": chain_id,
            "nonce": web3.eth.get_transaction_count(self.address, "pending"),
        }
        fields["gas"] = web3.eth.estimate_gas(fields) * 2
        fields["maxFeePerGas"] = web3.eth.get_block("latest")["baseFeePerGas"] * 2 + 10**9
        fields["maxPriorityFeePerGas"] = 10**9
        signed = Account.sign_transaction(fields, self.account.key)
        tx_hash = web3.eth.send_raw_transaction(signed.raw_transaction)
        self.sent.append(tx_hash.to_0x_hex())
        return tx_hash.to_0x_hex()

    def eth_getTransactionReceipt(self, params, chain_id):  # noqa: N802
        from web3.exceptions import TransactionNotFound

        try:
            receipt = self.web3.eth.get_transaction_receipt(params[0])
        except TransactionNotFound:
            return None
        return {
            "transactionHash": receipt["transactionHash"].to_0x_hex(),
            "blockNumber": hex(receipt["blockNumber"]),
            "status": hex(receipt["status"]),
        }

    def eth_call(self, params, chain_id):
        call = {"to": params[0]["to"], "data": params[0]["data"]}
        return self.web3.eth.call(call).to_0x_hex()


def accessibility_violations(page) -> list[str]:
    """axe-core's serious and critical findings (injected by evaluate: the CSP forbids a
    script tag)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    return page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        ".filter((v) => v.impact === 'serious' || v.impact === 'critical')"
        ".map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)"
    )


def fits_a_phone(page, name: str) -> None:
    """At 390 px: nothing scrolls sideways, axe finds nothing serious; a screenshot."""
    size = page.viewport_size
    page.set_viewport_size(PHONE)
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter((e) =>"
        " e.getBoundingClientRect().right > window.innerWidth + 1)"
        ".slice(0, 5).map((e) => e.tagName + '.' + e.className)"
    )
    assert page.evaluate(NO_OVERFLOW), wide
    assert accessibility_violations(page) == []
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(size)


# --- pure formatting, in the browser that runs it ----------------------------------------------


def test_amounts_and_periods_are_exact_words(live_server, page):
    """Amounts go from and to the smallest unit without floating point (2**64 wei and one wei
    survive), and periods read as people say them."""
    page.goto(f"{live_server.url}/signin/")
    page.add_script_tag(url=f"{live_server.url}/static/js/market.js")
    cases = page.evaluate(
        """() => {
        const refusal = (text, places) => {
          try { SGMarket.parseAmount(text, places); } catch (error) { return error.message; }
        };
        const usdc = {address: "0x" + "ab".repeat(20), symbol: "USDC", decimals: 6};
        return {
        cent: SGMarket.formatAmount("10000000000000000", 18),
        wei: SGMarket.formatAmount("1", 18),
        big: SGMarket.formatAmount("18446744073709551616", 18),
        usdc: SGMarket.formatAmount("2000000", 6),
        zero: SGMarket.formatAmount("0", 6),
        parsed: SGMarket.parseAmount("0.01", 18),
        parsedBig: SGMarket.parseAmount("18.446744073709551616", 18),
        parsedComma: SGMarket.parseAmount("2,5", 6),
        tooPrecise: refusal("0.0000001", 6),
        notANumber: refusal("1e3", 6),
        buy: SGMarket.offerLabel({kind: "purchase", amount: "10000000000000000", period_seconds: 0,
                                  currency: {address: null, symbol: "ETH", decimals: 18}}),
        rent: SGMarket.offerLabel({kind: "rental", amount: "2000000", period_seconds: 172800,
                                   currency: usdc}),
        member: SGMarket.offerLabel({kind: "membership", amount: "5000000",
                                     period_seconds: 2592000, currency: usdc}),
        periods: [3600, 86400, 259200, 5400, 45].map(SGMarket.period),
        chain: SGMarket.chainHex("eip155:31337"),
        tester: SGMarket.chainHex("eip155:131277322940537"),
        };
    }"""
    )
    assert cases["cent"] == "0.01"
    assert cases["wei"] == "0.000000000000000001"
    assert cases["big"] == "18.446744073709551616"
    assert cases["usdc"] == "2"
    assert cases["zero"] == "0"
    assert cases["parsed"] == "10000000000000000"
    assert cases["parsedBig"] == "18446744073709551616"
    assert cases["parsedComma"] == "2500000"
    assert "6 decimals" in cases["tooPrecise"]
    assert "is not an amount" in cases["notANumber"]
    assert cases["buy"] == "Buy for 0.01 ETH"
    assert cases["rent"] == "Rent 48 h for 2 USDC"
    assert cases["member"] == "Membership 30 days for 5 USDC"
    assert cases["periods"] == ["1 h", "24 h", "3 days", "90 min", "45 s"]
    assert cases["chain"] == "0x7a69"
    assert cases["tester"] == hex(131277322940537)


# --- the whole path, on the py-evm chain -------------------------------------------------------

CREATOR_KEY = "0x" + "c1" * 32
VIEWER_KEY = "0x" + "7e" * 32
CENT = 10**16  # 0.01 ETH in wei
RECORD_STATES = """() => {
  window.__marker = "no reload";
  window.__states = [];
  const region = document.getElementById("purchase-status");
  new MutationObserver(() => {
    const state = region.dataset.state;
    if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
  }).observe(region, { attributes: true, attributeFilter: ["data-state"] });
}"""


def fund(web3, *addresses: str) -> None:
    """Ether for gas and purchases, from an eth-tester account that is not StreamGate's signer."""
    for address in addresses:
        web3.eth.wait_for_transaction_receipt(
            web3.eth.send_transaction(
                {"from": web3.eth.accounts[5], "to": address, "value": 10**18}
            )
        )


def creator_with_wallet(chain: str, username: str = "maker"):
    """A creator who signs in with a password and whose linked EVM wallet holds CREATOR_KEY
    (the creator the registry records)."""
    from tests.factories import CreatorFactory, WalletFactory

    creator = CreatorFactory(username=username)
    creator.set_password("pass-word-1")
    creator.save()
    WalletFactory(user=creator, chain=chain, address=Account.from_key(CREATOR_KEY).address)
    return creator


def registered(content, chain: str, registry):
    """``content`` registered on chain with the creator's wallet as its creator (sent by the
    registrar, as StreamGate's registration does) and its registration recorded."""
    from apps.chain.models import ChainContract, ContractKind, Registration, RegistrationStatus
    from apps.chain.services import content_id_bytes32

    creator = Account.from_key(CREATOR_KEY).address
    web3 = registry.w3
    call = registry.functions.register(
        content_id_bytes32(content.id), creator, "bafkcid", 0, b"\0" * 32
    )
    receipt = web3.eth.wait_for_transaction_receipt(call.transact({"from": web3.eth.accounts[0]}))
    assert receipt["status"] == 1
    Registration.objects.create(
        content=content,
        chain=chain,
        contract=ChainContract.objects.get(chain=chain, kind=ContractKind.REGISTRY),
        status=RegistrationStatus.CONFIRMED,
        creator=creator,
        cid="bafkcid",
    )
    return content


def film_for_sale(tmp_path, chain: str, creator, registry):
    """A ready 6 s film of ``creator``, gated by a purchase on ``chain``, registered there."""
    from apps.content.services import content_update
    from tests.support.media import make_video
    from tests.transcode.conftest import encode

    clip = make_video(tmp_path / "film.mp4", seconds=6, size="854x480")
    content, _ = encode(clip, owner=creator)
    gate = {"purchase": {"chain": chain}}
    content = content_update(content=content, title="Harbour lights", gate=gate)
    return registered(content, chain, registry)


def relay_offers(content) -> str:
    """What StreamGate's worker does with signed offers: relay them (its signer pays the gas)
    and follow the transaction until it is confirmed (then they are live)."""
    from apps.chain.models import OfferSet
    from apps.chain.offers import offer_set_track
    from apps.chain.tasks import chain_offers_relay

    offer_set = OfferSet.objects.get(content=content, status="relaying")
    chain_offers_relay.run(offer_set.pk)
    assert offer_set_track(offer_set_id=offer_set.pk) is True
    return OfferSet.objects.get(pk=offer_set.pk).status


def offers_published(content, creator, offers: list[dict]) -> list[dict]:
    """The creator's offers through the API (202 typed data, signed with the creator's key,
    then the signature), relayed; returns the live offers the content now shows."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(creator)
    url = f"/api/v1/contents/{content.id}/offers/"
    asked = client.put(url, {"offers": offers}, format="json")
    assert asked.status_code == 202, asked.content
    signable = encode_typed_data(full_message=_integers(asked.json()["typed_data"]))
    signature = Wallet._hex(Account.sign_message(signable, CREATOR_KEY).signature)
    signed = client.put(url, {"offers": offers, "signature": signature}, format="json")
    assert signed.status_code == 200, signed.content
    assert relay_offers(content) == "live"
    return client.get(f"/api/v1/contents/{content.id}/").json()["offers"]


def sign_in_with_wallet(page, base: str, next_path: str) -> None:
    page.goto(f"{base}/signin/?next={next_path}")
    page.get_by_role("button", name="Sign in with Ethereum").click()
    try:
        page.wait_for_url(f"{base}{next_path}", timeout=10_000)
    except Exception:
        raise AssertionError(page.locator("#wallet-status").text_content()) from None


def test_a_viewer_sees_the_prices_buys_and_watches_without_a_reload(
    live_server,
    settings,
    page,
    new_context,
    tester_chain,
    deployed,
    media_root,
    fast_ladder,
    tmp_path,
):
    from apps.chain.indexer import index_chain

    settings.STREAMGATE_PUBLIC_URL = live_server.url
    chain, web3 = tester_chain.caip2, tester_chain.web3
    chain_id = int(chain.split(":")[1])
    fund(web3, Account.from_key(CREATOR_KEY).address, Account.from_key(VIEWER_KEY).address)
    creator = off_the_loop(creator_with_wallet, chain)
    content = off_the_loop(film_for_sale, tmp_path, chain, creator, deployed.registry)
    live = off_the_loop(
        offers_published,
        content,
        creator,
        [
            {"chain": chain, "kind": "purchase", "currency": None, "amount": str(CENT)},
            {
                "chain": chain,
                "kind": "rental",
                "currency": None,
                "amount": str(CENT // 5),
                "period_seconds": 48 * 3600,
            },
        ],
    )
    assert [offer["kind"] for offer in live] == ["purchase", "rental"]
    fee = deployed.registry.functions.setFee(500)  # 5 %, to the treasury
    web3.eth.wait_for_transaction_receipt(fee.transact({"from": web3.eth.accounts[0]}))

    # Signed out: the prices, and a way to sign in.
    page.goto(f"{live_server.url}/watch/{content.id}/")
    prices = page.get_by_test_id("prices")
    prices.wait_for()
    assert "Buy for 0.01 ETH · Rent 48 h for 0.002 ETH" in prices.text_content()

    # The viewer's wallet is on Ethereum mainnet: signing in works there; buying switches.
    wallet = Wallet(page, VIEWER_KEY, web3, start_chain=1, known_chains=[1, chain_id])
    sign_in_with_wallet(page, live_server.url, f"/watch/{content.id}/")
    page.get_by_text("Buy access to watch this video.").wait_for()
    buy = page.get_by_role("button", name="Buy for 0.01 ETH")
    rent = page.get_by_role("button", name="Rent 48 h for 0.002 ETH")
    assert buy.is_visible()
    assert rent.is_visible()
    screenshot(page, "market-watch-offers")
    fits_a_phone(page, "market-watch-offers")

    # Declined in the wallet: said in words, nothing sent, the buttons work again.
    wallet.reject.add("eth_sendTransaction")
    buy.focus()
    page.keyboard.press("Enter")  # a real button: the keyboard buys too
    status = page.get_by_test_id("purchase-status")
    page.get_by_text("You declined the request in your wallet").wait_for()
    assert status.get_attribute("aria-live") == "polite"
    assert wallet.sent == []
    assert buy.is_enabled()
    switched = page.evaluate("window.sgWalletLog")
    assert f"switch {hex(chain_id)}" in switched  # the wallet was asked to change networks

    page.evaluate(RECORD_STATES)
    buy.click()
    wait_until(
        page,
        "['confirmed', 'indexed'].includes(document.getElementById("
        "'purchase-status').dataset.state)",
        60,
    )
    assert len(wallet.sent) == 1
    # The player starts at "confirmed" (playback drops the cached refusal), before indexing.
    page.locator("#video").wait_for(state="visible", timeout=30_000)
    screenshot(page, "market-watch-bought")
    off_the_loop(index_chain, caip2=chain)
    wait_until(page, "document.getElementById('purchase-status').dataset.state === 'indexed'", 60)
    assert "Purchase complete" in status.text_content()
    page.get_by_role("button", name="Play").click()
    wait_until(page, "document.getElementById('video').currentTime > 1", 30)
    assert page.evaluate("window.__marker") == "no reload"
    states = page.evaluate("window.__states")
    order = ["sent", "mined", "confirmed", "indexed"]
    assert states[0] == "sent", states
    assert states[-1] == "indexed", states
    assert states == sorted(states, key=order.index), states  # only forward
    screenshot(page, "market-watch-playing")

    # The creator's sales: the purchase, net of the fee, withdrawn through the wallet.
    studio = new_context().new_page()
    Wallet(studio, CREATOR_KEY, web3, start_chain=chain_id, known_chains=[chain_id])
    studio.goto(f"{live_server.url}/signin/?next=/studio/sales/")
    studio.get_by_label("Username").fill("maker")
    studio.get_by_label("Password").fill("pass-word-1")
    studio.get_by_role("button", name="Sign in", exact=True).click()
    studio.wait_for_url(f"{live_server.url}/studio/sales/")
    sale = studio.get_by_test_id("purchase")
    sale.first.wait_for()
    assert sale.count() == 1
    assert "0.01 ETH" in sale.first.text_content()
    assert "0.0005 ETH" in sale.first.text_content()  # the fee
    total = studio.get_by_test_id("total").first.text_content()
    assert "0.0095 ETH" in total
    assert "1 sale · paid 0.01 ETH · fees 0.0005 ETH" in total
    assert wallet.address[:6].lower() in sale.first.text_content().lower()
    balance = studio.get_by_test_id("balance").first
    payout = Account.from_key(CREATOR_KEY).address
    before = web3.eth.get_balance(payout)
    screenshot(studio, "market-sales")
    fits_a_phone(studio, "market-sales")
    balance.get_by_role("button", name="Withdraw").click()
    studio.get_by_text("Withdrawn:").wait_for(timeout=60_000)
    gained = web3.eth.get_balance(payout) - before  # the net proceeds, less the gas paid
    assert 95 * 10**14 - 10**15 < gained < 95 * 10**14
    assert balance.get_by_role("button", name="Withdraw").is_disabled()


def test_a_creator_signs_offers_in_the_wallet_and_sees_them_go_live(
    live_server, settings, page, tester_chain, deployed
):
    settings.STREAMGATE_PUBLIC_URL = live_server.url
    chain, web3 = tester_chain.caip2, tester_chain.web3
    chain_id = int(chain.split(":")[1])
    creator = off_the_loop(creator_with_wallet, chain)

    def draft_registered():
        from tests.factories import ContentFactory

        rules = [{"purchase": {"chain": chain}}, {"membership": {"chain": chain}}]
        content = ContentFactory(
            owner=creator, title="Harbour lights", status="ready", gate={"any": rules}
        )
        return registered(content, chain, deployed.registry)

    content = off_the_loop(draft_registered)
    # The creator's wallet starts on another network: signing switches it first.
    wallet = Wallet(page, CREATOR_KEY, web3, start_chain=1, known_chains=[1, chain_id])
    page.goto(f"{live_server.url}/signin/?next=/studio/{content.id}/")
    page.get_by_label("Username").fill("maker")
    page.get_by_label("Password").fill("pass-word-1")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{live_server.url}/studio/{content.id}/")

    section = page.get_by_test_id("offers-section")
    section.get_by_text("No offers: this video is not for sale on this chain.").wait_for()
    section.get_by_role("button", name="Add an offer").click()
    section.get_by_role("button", name="Add an offer").click()
    rows = page.get_by_test_id("offer-row")
    rows.nth(0).get_by_label("Amount").fill("0.01")
    rows.nth(1).get_by_label("Kind").select_option("membership")
    rows.nth(1).get_by_label("Amount").fill("0.05")
    rows.nth(1).get_by_label("Period").fill("30")
    rows.nth(1).get_by_label("Unit").select_option(label="days")
    # A wrong amount is refused in words before anything is signed.
    rows.nth(0).get_by_label("Amount").fill("0.0000000000000000001")
    section.get_by_role("button", name="Sign and publish").click()
    status = page.get_by_test_id("offers-status")
    status.get_by_text("Offer 1: This currency has 18 decimals").wait_for()
    rows.nth(0).get_by_label("Amount").fill("0.01")

    section.get_by_role("button", name="Sign and publish").click()
    wait_until(page, "document.getElementById('offers-status').dataset.state === 'relaying'", 30)
    assert "Relaying" in status.text_content()
    (signed,) = wallet.signed
    assert signed["primaryType"] == "SetOffers"
    terms = [
        (int(o["kind"]), int(str(o["amount"])), int(o["period"]))
        for o in signed["message"]["offers"]
    ]
    assert terms == [(0, CENT, 0), (1, 5 * CENT, 30 * 86400)]
    assert f"switch {hex(chain_id)}" in page.evaluate("window.sgWalletLog")
    screenshot(page, "market-offers-relaying")

    assert off_the_loop(relay_offers, content) == "live"
    wait_until(page, "document.getElementById('offers-status').dataset.state === 'live'", 60)
    assert "Live" in status.text_content()
    # The editor shows the live offers in whole units, as typed.
    page.reload()
    rows.nth(1).wait_for()
    assert rows.nth(0).get_by_label("Amount").input_value() == "0.01"
    assert rows.nth(1).get_by_label("Kind").input_value() == "membership"
    assert rows.nth(1).get_by_label("Period").input_value() == "30"
    screenshot(page, "market-offers-live")
    fits_a_phone(page, "market-offers")


# --- ERC-20 purchases: a permit (one signature, one transaction) or approve then buy ------------

OTHER_VIEWER_KEY = "0x" + "7f" * 32
USDC = 10**6  # one USD Coin in its smallest unit (6 decimals)
PLN = 10**18  # one TestTokenPlain (18 decimals)


def another_viewer(new_context, key: str, web3, chain_id: int):
    """A second viewer's page in its own browser context, with its own wallet; its JavaScript
    errors are collected as the page fixture does."""
    page = new_context().new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page, Wallet(page, key, web3, start_chain=chain_id, known_chains=[chain_id])


def bought_and_playing(page, name: str) -> None:
    """The purchase reaches confirmed (or indexed) and the player starts without a reload."""
    wait_until(
        page,
        "['confirmed', 'indexed'].includes(document.getElementById("
        "'purchase-status').dataset.state)",
        60,
    )
    page.locator("#video").wait_for(state="visible", timeout=30_000)
    page.get_by_role("button", name="Play").click()
    wait_until(page, "document.getElementById('video').currentTime > 1", 30)
    assert page.evaluate("window.__marker") == "no reload"
    screenshot(page, name)


def test_erc20_purchases_take_a_permit_or_approve_then_buy(
    live_server,
    settings,
    page,
    new_context,
    tester_chain,
    deployed,
    media_root,
    fast_ladder,
    tmp_path,
):
    from tests.support.evm import deploy_artifact, send

    settings.STREAMGATE_PUBLIC_URL = live_server.url
    chain, web3 = tester_chain.caip2, tester_chain.web3
    chain_id = int(chain.split(":")[1])
    registry = deployed.registry
    permit_viewer = Account.from_key(VIEWER_KEY).address
    plain_viewer = Account.from_key(OTHER_VIEWER_KEY).address
    fund(web3, Account.from_key(CREATOR_KEY).address, permit_viewer, plain_viewer)
    usdc = deploy_artifact(web3, "TestToken", "USD Coin", "USDC", 6)
    plain = deploy_artifact(web3, "TestTokenPlain", "Plain", "PLN")
    send(usdc.functions.mint(permit_viewer, 1000 * USDC), web3.eth.accounts[0])
    send(plain.functions.mint(plain_viewer, 1000 * PLN), web3.eth.accounts[0])
    creator = off_the_loop(creator_with_wallet, chain)
    content = off_the_loop(film_for_sale, tmp_path, chain, creator, deployed.registry)
    off_the_loop(
        offers_published,
        content,
        creator,
        [
            {"chain": chain, "kind": "purchase", "currency": usdc.address, "amount": str(2 * USDC)},
            {
                "chain": chain,
                "kind": "rental",
                "currency": plain.address,
                "amount": str(3 * PLN),
                "period_seconds": 48 * 3600,
            },
        ],
    )

    # USD Coin has EIP-2612: the viewer signs a permit, then sends one buyWithPermit.
    wallet = Wallet(page, VIEWER_KEY, web3, start_chain=chain_id, known_chains=[chain_id])
    sign_in_with_wallet(page, live_server.url, f"/watch/{content.id}/")
    buy = page.get_by_role("button", name="Buy for 2 USDC")
    buy.wait_for()
    assert page.get_by_role("button", name="Rent 48 h for 3 PLN").is_visible()
    fits_a_phone(page, "market-watch-erc20-offers")
    page.evaluate(RECORD_STATES)
    buy.click()
    bought_and_playing(page, "market-watch-permit-playing")
    (permit,) = wallet.signed
    assert permit["primaryType"] == "Permit"
    assert permit["domain"]["verifyingContract"].lower() == usdc.address.lower()
    assert permit["message"]["spender"].lower() == registry.address.lower()
    assert int(str(permit["message"]["value"])) == 2 * USDC
    (sent,) = wallet.sent  # no approval transaction
    tx = web3.eth.get_transaction(sent)
    assert tx["to"] == registry.address
    assert registry.decode_function_input(tx["input"])[0].fn_name == "buyWithPermit"
    assert usdc.functions.balanceOf(permit_viewer).call() == 998 * USDC
    assert usdc.functions.balanceOf(registry.address).call() == 2 * USDC
    assert page.evaluate("window.__states")[0] == "sent"
    fits_a_phone(page, "market-watch-permit-bought")

    # The plain token has no permit: an approval first, then the purchase; nothing signed.
    other, plain_wallet = another_viewer(new_context, OTHER_VIEWER_KEY, web3, chain_id)
    sign_in_with_wallet(other, live_server.url, f"/watch/{content.id}/")
    rent = other.get_by_role("button", name="Rent 48 h for 3 PLN")
    rent.wait_for()
    other.evaluate(RECORD_STATES)
    rent.click()
    bought_and_playing(other, "market-watch-approve-playing")
    assert plain_wallet.signed == []
    approve, purchase = (web3.eth.get_transaction(h) for h in plain_wallet.sent)
    assert approve["to"] == plain.address
    function, arguments = plain.decode_function_input(approve["input"])
    assert (function.fn_name, arguments["spender"], arguments["value"]) == (
        "approve",
        registry.address,
        3 * PLN,
    )
    assert purchase["to"] == registry.address
    assert registry.decode_function_input(purchase["input"])[0].fn_name == "buy"
    assert plain.functions.balanceOf(registry.address).call() == 3 * PLN
    fits_a_phone(other, "market-watch-approve-bought")
    assert other.errors == []


# --- the payout address: signed in the wallet, relayed, then withdrawals go there --------------

NEW_PAYOUT_KEY = "0x" + "9a" * 32


def relay_payout() -> str:
    """What StreamGate's worker does with a signed payout change: relay it and follow it until
    it is confirmed (live) or refused (failed)."""
    from apps.chain.models import PayoutChange
    from apps.chain.payouts import payout_track
    from apps.chain.tasks import chain_payout_relay

    change = PayoutChange.objects.get(status="relaying")
    chain_payout_relay.run(change.pk)
    change.refresh_from_db()
    if change.status == "submitted":
        assert payout_track(change_id=change.pk) is True
        change.refresh_from_db()
    return change.status


def test_a_creator_changes_the_payout_address_and_withdraws_there(
    live_server, settings, page, tester_chain, deployed
):
    from apps.chain.indexer import index_chain

    settings.STREAMGATE_PUBLIC_URL = live_server.url
    chain, web3 = tester_chain.caip2, tester_chain.web3
    chain_id = int(chain.split(":")[1])
    registry = deployed.registry
    creator_address = Account.from_key(CREATOR_KEY).address
    fund(web3, creator_address)
    creator = off_the_loop(creator_with_wallet, chain)

    def content_sold():
        from tests.factories import ContentFactory

        content = ContentFactory(
            owner=creator,
            title="Harbour lights",
            status="ready",
            gate={"purchase": {"chain": chain}},
        )
        return registered(content, chain, registry)

    content = off_the_loop(content_sold)
    offer = {"chain": chain, "kind": "purchase", "currency": None, "amount": str(CENT)}
    (live,) = off_the_loop(offers_published, content, creator, [offer])
    off_the_loop(bought_through_the_api, content, live["id"], web3, web3.eth.accounts[6])
    off_the_loop(index_chain, caip2=chain)  # the sale is listed

    # The creator's wallet starts on another network: signing switches it first.
    wallet = Wallet(page, CREATOR_KEY, web3, start_chain=1, known_chains=[1, chain_id])
    page.goto(f"{live_server.url}/signin/?next=/studio/sales/")
    page.get_by_label("Username").fill("maker")
    page.get_by_label("Password").fill("pass-word-1")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{live_server.url}/studio/sales/")
    item = page.get_by_test_id("payout")
    current = item.locator("[data-role=current-payout]")
    item.get_by_text(f"{creator_address} (your creator address itself)").wait_for()
    assert item.count() == 1
    assert "Loading" not in page.get_by_test_id("payouts").text_content()
    assert page.get_by_test_id("purchase").count() == 1
    field = item.get_by_label("New payout address on")
    status = item.get_by_test_id("payout-status")
    assert status.get_attribute("aria-live") == "polite"

    # Refused before anything is signed: not an address (here), the zero address (the API).
    field.fill("nope")
    field.press("Enter")  # a real form: the keyboard submits it
    status.get_by_text("A payout address is 0x followed by 40 hexadecimal digits.").wait_for()
    assert field.get_attribute("aria-invalid") == "true"
    field.fill("0x" + "0" * 40)
    item.get_by_role("button", name="Sign and change").click()
    status.get_by_text('Not changed: "payout" must be a non-zero address.').wait_for()
    assert field.get_attribute("aria-invalid") == "true"
    # The creator's wallet is not linked to the account (any more): a 409 in words.
    wallet_row = off_the_loop(_unlink_wallets, creator)
    new_payout = Account.from_key(NEW_PAYOUT_KEY).address
    field.fill(new_payout)
    field.press("Enter")
    status.get_by_text(f"records {creator_address} as your contents' creator").wait_for()
    assert "link that wallet" in status.text_content()
    assert wallet.signed == []
    off_the_loop(_link_wallet, creator, chain, wallet_row)

    # Signed, but the creator's nonce is spent before the relay (offers signed meanwhile): the
    # registry refuses the change, and the page says so.
    field.press("Enter")
    wait_until(
        page,
        "document.querySelector('[data-testid=payout-status]').dataset.state === 'relaying'",
        30,
    )
    off_the_loop(offers_published, content, creator, [offer])
    assert off_the_loop(relay_payout) == "failed"
    wait_until(
        page, "document.querySelector('[data-testid=payout-status]').dataset.state === 'failed'", 30
    )
    assert "Failed: the payout address was not changed. The registry refused it" in (
        status.text_content()
    )
    assert current.get_attribute("data-payout") == creator_address

    # Signed again, relayed: the page shows the new payout address.
    field.fill(new_payout)
    field.press("Enter")
    wait_until(
        page,
        "document.querySelector('[data-testid=payout-status]').dataset.state === 'relaying'",
        30,
    )
    assert "Relaying" in status.text_content()
    signed = wallet.signed[-1]
    assert signed["primaryType"] == "SetPayout"
    assert (signed["message"]["creator"], signed["message"]["payout"]) == (
        creator_address,
        new_payout,
    )
    assert len(wallet.signed) == 2
    assert f"switch {hex(chain_id)}" in page.evaluate("window.sgWalletLog")
    screenshot(page, "market-payout-relaying")
    assert off_the_loop(relay_payout) == "live"
    wait_until(
        page, "document.querySelector('[data-testid=payout-status]').dataset.state === 'live'", 30
    )
    assert "Live: withdrawals on" in status.text_content()
    assert current.text_content() == new_payout
    assert field.input_value() == ""
    assert registry.functions.payoutOf(creator_address).call() == new_payout
    screenshot(page, "market-payout-live")
    fits_a_phone(page, "market-payout")

    # Withdraw: the whole balance goes to the new payout address, not to the creator's.
    before = web3.eth.get_balance(new_payout)
    page.get_by_test_id("balance").first.get_by_role("button", name="Withdraw").click()
    page.get_by_text("Withdrawn:").wait_for(timeout=60_000)
    assert new_payout in page.get_by_test_id("sales-status").text_content()
    assert web3.eth.get_balance(new_payout) - before == CENT  # no fee set, no gas paid by it
    assert registry.functions.balanceOf(creator_address, "0x" + "00" * 20).call() == 0


def bought_through_the_api(content, offer_id: int, web3, buyer: str) -> None:
    """A viewer (an eth-tester account) buys ``offer_id`` with the transactions the API builds."""
    from rest_framework.test import APIClient

    from tests.factories import UserFactory, WalletFactory

    viewer = UserFactory()
    WalletFactory(user=viewer, chain=f"eip155:{web3.eth.chain_id}", address=buyer)
    client = APIClient()
    client.force_authenticate(viewer)
    answer = client.post(
        f"/api/v1/contents/{content.id}/purchase/", {"offer": offer_id}, format="json"
    )
    assert answer.status_code == 200, answer.content
    for tx in answer.json():
        sent = web3.eth.send_transaction(
            {"from": buyer, "to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16)}
        )
        assert web3.eth.wait_for_transaction_receipt(sent)["status"] == 1


def _unlink_wallets(user) -> dict:
    from apps.access.models import WalletAccount

    row = WalletAccount.objects.get(user=user)
    kept = {"chain": row.chain, "address": row.address}
    row.delete()
    return kept


def _link_wallet(user, chain: str, kept: dict) -> None:
    from tests.factories import WalletFactory

    WalletFactory(user=user, chain=kept["chain"], address=kept["address"])
