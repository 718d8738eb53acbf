"""A viewer in a real browser: an EIP-1193 wallet (a test shim whose personal_sign is answered
by eth_account) signs in with Ethereum; gated content explains what it needs; after the NFT is
minted on py-evm (and indexed), the player starts, plays past 1 s and offers the ladder."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address

from apps.chain.indexer import index_chain
from apps.content.services import content_update
from tests.support.evm import send
from tests.support.media import make_video
from tests.transcode.conftest import TEST_LADDER, encode
from tests.web.conftest import screenshot, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WALLET_SHIM = """
window.ethereum = {
  isShim: true,
  async request({ method, params }) {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [ADDRESS];
    if (method === "eth_chainId") return CHAIN_ID;
    if (method === "personal_sign") return await window.sgPersonalSign(params[0]);
    throw Object.assign(new Error(`unsupported method ${method}`), { code: 4200 });
  },
};
"""


@pytest.fixture
def fast_ladder(settings, tmp_path):
    settings.TRANSCODE_PRESET = "ultrafast"
    settings.TRANSCODE_LADDER = TEST_LADDER[-2:]  # 480p and 360p
    settings.TRANSCODE_STORYBOARD = {"interval": 1, "width": 160, "columns": 5, "rows": 5}
    settings.TRANSCODE_WORK_DIR = tmp_path / "work"


def off_the_loop(function, *args, **kwargs):
    """Run server-side work (which may use async_to_sync) outside Playwright's event loop. The
    thread's database connection goes back to the pool when the work is done: left open, each
    call would hold one of the pool's connections for good, and a module of such tests would
    exhaust it (the live server then waits for a connection and fails)."""

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def wallet_page(page, key: str, chain_id: int):
    account = Account.from_key(key)

    def personal_sign(message: str) -> str:
        signature = Account.sign_message(encode_defunct(text=message), key).signature.hex()
        return signature if signature.startswith("0x") else "0x" + signature

    page.expose_function("sgPersonalSign", personal_sign)
    page.add_init_script(
        WALLET_SHIM.replace("ADDRESS", repr(account.address.lower())).replace(
            "CHAIN_ID", repr(hex(chain_id))
        )
    )
    return account


def test_a_wallet_signs_in_and_plays_once_it_holds_the_pass(
    live_server, settings, page, tester_chain, deployed, media_root, fast_ladder, tmp_path
):
    settings.STREAMGATE_PUBLIC_URL = live_server.url
    chain = tester_chain.caip2
    clip = make_video(tmp_path / "film.mp4", seconds=6, size="854x480")
    content, _ = off_the_loop(encode, clip)
    gate = {"erc721": {"chain": chain, "contract": deployed.nft721.address, "token_id": None}}
    content = content_update(content=content, title="Members' film", gate=gate)
    off_the_loop(index_chain, caip2=chain)  # the indexer follows the gate's contract from now
    viewer = wallet_page(page, "0x" + "7e" * 32, int(chain.split(":")[1]))

    page.goto(f"{live_server.url}/watch/{content.id}/")
    page.get_by_text("Sign in to watch.").wait_for()
    page.get_by_role("link", name="Sign in with your wallet").click()
    screenshot(page, "signin")
    page.get_by_role("button", name="Sign in with Ethereum").click()
    try:
        page.wait_for_url(f"{live_server.url}/watch/{content.id}/", timeout=10_000)
    except Exception:
        raise AssertionError(page.locator("#wallet-status").text_content()) from None
    assert page.get_by_test_id("whoami").text_content().startswith(viewer.address[:10].lower())

    page.get_by_text("This video is for holders only.").wait_for()
    page.get_by_text("What was checked").click()  # the rule-by-rule answer, folded away
    requirement = page.get_by_test_id("requirement")
    requirement.wait_for()
    assert deployed.nft721.address in requirement.text_content()
    assert chain in requirement.text_content()
    # Signed in without the token: the poster and the gate in words stay on the page.
    assert page.get_by_test_id("gate-poster").is_visible()
    words = page.get_by_test_id("gate-words").text_content()
    assert f"contract {deployed.nft721.address} on eth-tester." in words
    screenshot(page, "watch-denied")

    owner = tester_chain.accounts[0]
    send(deployed.nft721.functions.mint(viewer.address), owner)
    off_the_loop(index_chain, caip2=chain)  # the transfer drops the cached "does not hold"
    page.get_by_role("button", name="Check again").click()

    page.locator("#video").wait_for(state="visible")
    page.get_by_role("button", name="Play").click()
    wait_until(page, "document.getElementById('video').currentTime > 1", 30)
    qualities = page.get_by_test_id("quality").locator("option").all_text_contents()
    assert qualities[1:] == ["480p", "360p"]
    assert qualities[0] in ("Auto", "Auto (480p)", "Auto (360p)")  # which rung Auto chose
    # Storyboard previews: hovering the seek bar shows the sprite cell of that moment.
    seek = page.locator("#seek").bounding_box()
    page.mouse.move(seek["x"] + seek["width"] * 0.5, seek["y"] + seek["height"] / 2)
    preview = page.locator("#preview")
    preview.wait_for(state="visible")
    assert "storyboard/sprite-" in preview.evaluate("e => e.style.backgroundImage")
    assert preview.evaluate("e => e.dataset.time") in ("2", "3")  # the middle of 6 s
    screenshot(page, "watch")


def test_a_missing_wallet_and_a_refusal_are_explained(live_server, settings, page):
    settings.STREAMGATE_PUBLIC_URL = live_server.url
    page.goto(f"{live_server.url}/signin/")
    page.get_by_role("button", name="Sign in with Ethereum").click()
    page.get_by_text("No Ethereum wallet was found in this browser").wait_for()
    page.get_by_role("button", name="Sign in with Solana").click()
    page.get_by_text("No Solana wallet was found in this browser").wait_for()

    page.add_init_script(
        "window.ethereum = { async request({ method }) {"
        " if (method === 'eth_chainId') return '0x1';"
        " if (method === 'eth_requestAccounts') return ['0x" + "11" * 20 + "'];"
        " throw Object.assign(new Error('User rejected the request.'), { code: 4001 }); } };"
    )
    page.reload()
    page.get_by_role("button", name="Sign in with Ethereum").click()
    page.get_by_text("You declined the request in your wallet").wait_for()


def open_editor(live_server, page):
    """A creator's draft, opened in the studio's editor after signing in; returns the draft."""
    from tests.factories import ContentFactory, CreatorFactory

    def make_creator():
        creator = CreatorFactory(username="editor")
        creator.set_password("pass-word-1")
        creator.save()
        return ContentFactory(owner=creator, title="Draft cut")

    content = off_the_loop(make_creator)
    page.goto(f"{live_server.url}/signin/?next=/studio/{content.id}/")
    page.get_by_label("Username").fill("editor")
    page.get_by_label("Password").fill("pass-word-1")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{live_server.url}/studio/{content.id}/")
    return content


def test_the_gate_editor_shows_the_api_s_validation_errors(live_server, page, settings):
    settings.CHAIN_RPC_URLS = {"eip155:1": "http://127.0.0.1:9/"}  # never asked when saving
    content = open_editor(live_server, page)

    page.get_by_label("New condition").select_option("erc721")
    page.get_by_role("button", name="Add", exact=True).click()
    page.get_by_label("Contract").fill("0x1234")
    page.get_by_role("button", name="Save rule").click()
    error = page.get_by_text("The rule was not saved. $.any[0].erc721.contract:")
    error.wait_for()

    page.get_by_label("Contract").fill("0x" + "ab" * 20)
    page.get_by_label("Viewers need").select_option("all")
    page.get_by_role("button", name="Save rule").click()
    page.get_by_text("Rule saved.").wait_for()
    screenshot(page, "edit")
    saved = off_the_loop(lambda: type(content).objects.get(pk=content.pk).gate)
    assert saved == {
        "all": [
            {
                "erc721": {
                    "chain": "eip155:1",
                    "contract": to_checksum_address("0x" + "ab" * 20),
                    "token_id": None,
                }
            }
        ]
    }


def test_the_gate_editor_refuses_a_chain_nobody_can_check(live_server, page, settings):
    """A rule on a chain with no RPC would make every playback wait for ever: the editor
    offers the configured chains by name, marks a chain the server no longer checks (a rule
    saved before its RPC went) and shows the API's refusal, naming the chain."""
    settings.CHAIN_RPC_URLS = {"eip155:137": "http://127.0.0.1:9/"}
    content = open_editor(live_server, page)
    page.get_by_label("New condition").select_option("erc721")
    page.get_by_role("button", name="Add", exact=True).click()
    chain = page.get_by_label("Token's chain")
    assert chain.input_value() == "eip155:137"
    assert chain.locator("option").all_inner_texts() == ["Polygon PoS"]
    contract = page.get_by_label("Contract")
    contract.fill("0x" + "ab" * 20)
    # The contract field is wide enough for a whole address.
    width = contract.evaluate("(e) => e.scrollWidth <= e.clientWidth")
    assert width, "the address does not fit its field"
    page.get_by_role("button", name="Save rule").click()
    page.get_by_text("Rule saved.").wait_for()
    saved = off_the_loop(lambda: type(content).objects.get(pk=content.pk).gate)
    assert saved["any"][0]["erc721"]["chain"] == "eip155:137"
    page.get_by_text(
        "Token conditions can use the chains this server checks: Polygon PoS."
    ).wait_for()

    # The RPC of the rule's chain goes away: the editor says so, and saving is refused.
    stale = {"any": [{"erc721": {**saved["any"][0]["erc721"], "chain": "eip155:1"}}]}
    off_the_loop(lambda: type(content).objects.filter(pk=content.pk).update(gate=stale))
    page.reload()
    assert chain.input_value() == "eip155:1"
    assert chain.locator("option").all_inner_texts() == [
        "Ethereum (not checked by this server)",
        "Polygon PoS",
    ]
    page.get_by_role("button", name="Save rule").click()
    page.get_by_text(
        "The rule was not saved. $.any[0].erc721.chain: no RPC is configured for eip155:1"
    ).wait_for(timeout=10_000)


def test_without_chains_the_editor_offers_allowlists_only(live_server, page, settings):
    settings.CHAIN_RPC_URLS = {}
    open_editor(live_server, page)
    kinds = page.get_by_label("New condition")
    for kind in ("erc721", "erc1155", "metaplex"):
        assert kinds.locator(f"option[value={kind}]").is_disabled()
    assert not kinds.locator("option[value=allowlist]").is_disabled()
    assert "no chain configured" in kinds.locator("option[value=erc721]").inner_text()


SOLANA_SHIM = """
window.phantom = { solana: {
  isPhantom: true,
  publicKey: { toBase58: () => ADDRESS },
  async connect() { return { publicKey: this.publicKey }; },
  async signMessage(bytes, display) {
    const signature = await window.sgSolanaSign(Array.from(bytes), display);
    return { signature: new Uint8Array(signature), publicKey: this.publicKey };
  },
} };
"""


def test_a_solana_wallet_signs_in(live_server, settings, page):
    from solders.keypair import Keypair

    from apps.access.models import WalletAccount

    settings.STREAMGATE_PUBLIC_URL = live_server.url
    keypair = Keypair.from_seed(bytes(range(32)))
    address = str(keypair.pubkey())
    signed: list[str] = []

    def sign(data: list[int], display: str) -> list[int]:
        signed.append(bytes(data).decode())
        assert display == "utf8"
        return list(bytes(keypair.sign_message(bytes(data))))

    page.expose_function("sgSolanaSign", sign)
    page.add_init_script(SOLANA_SHIM.replace("ADDRESS", repr(address)))
    page.goto(f"{live_server.url}/signin/?next=/")
    page.get_by_role("button", name="Sign in with Solana").click()
    try:
        page.wait_for_url(f"{live_server.url}/", timeout=10_000)
    except Exception:
        raise AssertionError(page.locator("#wallet-status").text_content()) from None
    assert page.get_by_test_id("whoami").text_content().startswith(address[:10])
    (message,) = signed
    assert message.startswith(f"{live_server.url} wants you to sign in with your Solana account:")
    assert address in message.splitlines()[1]
    wallet = WalletAccount.objects.get()
    assert (wallet.namespace, wallet.address) == ("solana", address)
