"""The account page in a real browser: a wallet signs in, links a second wallet (the test's
EIP-1193 shim switches accounts between steps, as a person would in their wallet), is refused
a wallet another account holds, unlinks, creates an API token (its secret shown once, working
as a bearer token), revokes it (refused from the next call), and signs out everywhere, which
also signs out a second browser. Checked at 1366x860 and 390x844 for horizontal overflow."""

import json
import urllib.error
import urllib.request

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.support.processes import ROOT
from tests.web.conftest import screenshot, wait_until
from tests.web.test_viewer import SOLANA_SHIM, off_the_loop

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = {name: "0x" + "00" * 31 + byte for name, byte in (("a", "a1"), ("b", "b2"), ("c", "c3"))}
ADDRESSES = {name: Account.from_key(key).address for name, key in KEYS.items()}

# The wallet asks the test which account is selected, and the test signs with its key.
SWITCHABLE_WALLET = """
window.ethereum = {
  isShim: true,
  async request({ method, params }) {
    const accounts = ["eth_requestAccounts", "eth_accounts"];
    if (accounts.includes(method)) return [await window.sgAccount()];
    if (method === "eth_chainId") return "0x1";
    if (method === "personal_sign") return await window.sgPersonalSign(params[0], params[1]);
    throw Object.assign(new Error(`unsupported method ${method}`), { code: 4200 });
  },
};
"""
OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"
# What sticks out on the right, for the failure message.
WIDEST = (
    "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right >"
    " window.innerWidth).map(e => `${e.tagName}#${e.id}.${e.className}`).slice(0, 8).join(' ')"
)


def wallet_install(context, selected: dict) -> None:
    """Give ``context`` a wallet that signs with the key named by ``selected["key"]``."""

    def sign(message: str, address: str) -> str:
        key = KEYS[selected["key"]]
        assert address.lower() == Account.from_key(key).address.lower()
        return Account.sign_message(encode_defunct(text=message), key).signature.to_0x_hex()

    context.expose_function("sgAccount", lambda: ADDRESSES[selected["key"]].lower())
    context.expose_function("sgPersonalSign", sign)
    context.add_init_script(SWITCHABLE_WALLET)


def bearer_status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/account/")
    page.wait_for_url(f"{base}/signin/?next=/account/")
    page.get_by_role("button", name="Sign in with Ethereum").click()
    page.wait_for_url(f"{base}/account/")


def test_the_account_page_links_wallets_manages_tokens_and_signs_out_everywhere(
    live_server, settings, page, new_context
):
    from apps.access.models import ApiToken
    from tests.factories import WalletFactory

    settings.STREAMGATE_PUBLIC_URL = base = live_server.url
    # Wallet C belongs to someone else's account.
    off_the_loop(WalletFactory, address=ADDRESSES["c"], address_key=f"eip155:{ADDRESSES['c']}")

    selected = {"key": "a"}
    context = page.context
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    wallet_install(context, selected)
    page.set_viewport_size({"width": 1366, "height": 860})

    sign_in(page, base)
    wallets = page.get_by_test_id("wallet-list").locator("li.account-item")
    wallets.first.wait_for()
    assert page.get_by_role("link", name="Account").get_attribute("aria-current") == "page"
    first = wallets.first
    assert "Ethereum (every EVM network)" in first.text_content()
    assert "This session" in first.text_content()
    assert first.locator("code.address").get_attribute("title") == ADDRESSES["a"]
    first.get_by_role("button", name=f"Copy address {ADDRESSES['a']}").click()
    page.get_by_text("Address copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == ADDRESSES["a"]

    # Link wallet B: the person switches accounts in their wallet, then links.
    selected["key"] = "b"
    page.get_by_role("button", name="Link an Ethereum wallet").click()
    page.get_by_text(f"Linked {ADDRESSES['b'][:6]}").wait_for()
    wait_until(page, "document.querySelectorAll('#wallet-list li.account-item').length === 2")

    # Wallet C is someone else's: refused, in words.
    selected["key"] = "c"
    page.get_by_role("button", name="Link an Ethereum wallet").click()
    page.get_by_text("This wallet is linked to another StreamGate account.").wait_for()

    # A Solana wallet too (Phantom-style provider).
    from solders.keypair import Keypair

    keypair = Keypair.from_seed(bytes(range(1, 33)))
    solana = str(keypair.pubkey())
    page.expose_function(
        "sgSolanaSign", lambda data, display: list(bytes(keypair.sign_message(bytes(data))))
    )
    page.add_init_script(SOLANA_SHIM.replace("ADDRESS", repr(solana)))
    page.reload()
    page.get_by_role("button", name="Link a Solana wallet").click()
    page.get_by_text(f"Linked {solana[:6]}").wait_for()
    wait_until(page, "document.querySelectorAll('#wallet-list li.account-item').length === 3")
    assert "Solana" in wallets.nth(2).text_content()

    # A token: the API's refusal of an empty name, then one with a name, shown once.
    page.get_by_role("button", name="Create token").click()
    page.get_by_text("Token name: This field may not be blank.").wait_for()
    page.get_by_label("Token name").fill("deploy script")
    page.get_by_label("Expires").select_option("90")
    # Scopes: all ticked at first; this one may not manage (nor list tokens).
    scopes = page.get_by_test_id("token-scopes")
    assert scopes.locator("input:checked").count() == 4
    scopes.locator('input[value="manage"]').uncheck()
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("token-secret")
    secret.wait_for()
    clear = secret.text_content()
    assert clear.startswith("sg_")
    page.get_by_text("It is shown only this once").wait_for()
    page.get_by_role("button", name="Copy token").click()
    page.get_by_text("Token copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == clear
    tokens = page.get_by_test_id("token-list").locator("li.account-item")
    tokens.first.wait_for()
    assert "deploy script" in tokens.first.text_content()
    assert "Never used" in tokens.first.text_content()
    assert "Scopes: playback, read, upload" in tokens.first.text_content()
    assert bearer_status(f"{base}/api/v1/auth/me/", clear) == 200
    assert bearer_status(f"{base}/api/v1/auth/tokens/", clear) == 403

    # Both sizes, with both lists and the secret showing: nothing scrolls sideways; axe-core
    # finds no violation.
    assert page.evaluate(OVERFLOW)
    axe = (ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text()
    page.evaluate(axe)
    violations = page.evaluate("axe.run().then(r => r.violations.map(v => `${v.id}: ${v.help}`))")
    assert violations == []
    screenshot(page, "account")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate(OVERFLOW), page.evaluate(WIDEST)
    screenshot(page, "account-phone")
    page.set_viewport_size({"width": 1366, "height": 860})

    # The secret is not shown again.
    page.reload()
    tokens.first.wait_for()
    assert page.get_by_test_id("token-created").is_hidden()
    assert clear not in page.content()
    assert "Last used" in tokens.first.text_content()

    # Unlink B (after confirming); A, the last way to sign in, is refused in words.
    wallets.nth(1).get_by_role("button", name="Unlink").click()
    dialog = page.get_by_role("dialog", name="Unlink this wallet?")
    dialog.get_by_role("button", name="Unlink wallet").click()
    page.get_by_text(f"Unlinked {ADDRESSES['b'][:6]}").wait_for()
    wait_until(page, "document.querySelectorAll('#wallet-list li.account-item').length === 2")
    wallets.nth(1).get_by_role("button", name="Unlink").click()
    page.get_by_role("dialog").get_by_role("button", name="Unlink wallet").click()
    page.get_by_text(f"Unlinked {solana[:6]}").wait_for()
    wait_until(page, "document.querySelectorAll('#wallet-list li.account-item').length === 1")
    wallets.first.get_by_role("button", name="Unlink").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert page.get_by_role("dialog").is_hidden()
    wallets.first.get_by_role("button", name="Unlink").click()
    page.get_by_role("dialog").get_by_role("button", name="Unlink wallet").click()
    page.get_by_text("This wallet is your only way to sign in").wait_for()

    # Revoke the token: the very next call with it is refused.
    tokens.first.get_by_role("button", name="Revoke token deploy script").click()
    page.get_by_role("dialog", name="Revoke this token?").get_by_role(
        "button", name="Revoke token"
    ).click()
    page.get_by_text("Revoked “deploy script”.").wait_for()
    page.get_by_text("No API tokens yet.").wait_for()
    assert bearer_status(f"{base}/api/v1/auth/me/", clear) == 401

    # A second device (another browser context) signs in with wallet A too.
    selected["key"] = "a"
    other_device = new_context(viewport={"width": 1366, "height": 860})
    other_device.set_default_timeout(15_000)
    wallet_install(other_device, selected)
    laptop = other_device.new_page()
    sign_in(laptop, base)
    laptop.get_by_test_id("wallet-list").locator("li.account-item").first.wait_for()
    kept = off_the_loop(
        lambda: ApiToken.objects.filter(revoked_at=None).values_list("source", flat=True)
    )
    assert sorted(kept) == ["siwe", "siwe"]  # one sign-in token per device

    # Sign out everywhere, from the first browser: both end signed out.
    page.get_by_label("Also revoke all my API tokens").check()
    page.get_by_role("button", name="Sign out everywhere").click()
    page.get_by_role("dialog", name="Sign out everywhere?").get_by_role(
        "button", name="Sign out everywhere"
    ).click()
    page.wait_for_url(f"{base}/signin/?next=/account/")
    assert page.get_by_role("link", name="Account").count() == 0
    laptop.goto(f"{base}/account/")
    laptop.wait_for_url(f"{base}/signin/?next=/account/")
    assert not off_the_loop(lambda: ApiToken.objects.filter(revoked_at=None).exists())


def test_the_api_s_answer_is_shown_when_the_session_ended_elsewhere(live_server, settings, page):
    """The page was open while another device signed out everywhere: its next action says so."""
    from django.contrib.auth import get_user_model

    settings.STREAMGATE_PUBLIC_URL = base = live_server.url

    def make_user():
        user = get_user_model().objects.create_user("pat", password="pass-word-1")
        return user

    user = off_the_loop(make_user)
    page.goto(f"{base}/signin/?next=/account/")
    page.get_by_label("Username").fill("pat")
    page.get_by_label("Password").fill("pass-word-1")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/account/")
    page.get_by_text("No wallet linked: you sign in with your password.").wait_for()

    from apps.access.account import account_sign_out_everywhere

    off_the_loop(account_sign_out_everywhere, user=user, revoke_api_tokens=False)
    page.get_by_label("Token name").fill("too late")
    page.get_by_role("button", name="Create token").click()
    page.get_by_text("You are signed out").wait_for()
    assert json.loads(page.locator("#account-config").text_content())["hasPassword"] is True
