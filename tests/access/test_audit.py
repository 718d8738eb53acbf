"""The audit trail, through the real doors: each event recorded by the API, the sign-in pages,
the admin and the management commands, with its actor, client address (behind a trusted proxy
or not) and request id; rows that neither Python nor PostgreSQL let anyone change or delete, a
retention purge that removes old rows only, and a read-only admin list."""

import base64
import io
import os
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.utils import timezone

from apps.access.models import ApiToken, WalletAccount
from apps.access.services import api_token_create
from apps.content.audit import (
    AuditAppendOnly,
    AuditEvent,
    audit_command,
    audit_purge,
    audit_record,
)
from apps.content.tasks import audit_purge as audit_purge_task
from tests.access.conftest import ALICE, BOB, SignInClient, published, sign, siwe_text
from tests.content.test_admin import change_form, change_url
from tests.factories import ContentFactory, CreatorFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"
ALLOW_ALICE = {"allowlist": {"accounts": [f"eip155:1:{ALICE.address}"]}}


def rows(event: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event=event).order_by("id"))


def only(event: str) -> AuditEvent:
    (row,) = rows(event)
    return row


def raw(statements: str) -> None:
    """SQL typed by hand (as in psql), in a savepoint that a refusal rolls back."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statements)


# --- sign-ins ----------------------------------------------------------------------------------


def test_a_wallet_sign_in_is_one_row_with_address_request_id_and_no_secret():
    client = SignInClient(REMOTE_ADDR="198.51.100.20", HTTP_X_REQUEST_ID="req-signin-1")
    response = client.siwe_sign_in(ALICE)
    assert response.status_code == 200, response.content
    row = only("auth.signin.succeeded")  # not a second one from Django's user_logged_in
    wallet = WalletAccount.objects.get()
    token = ApiToken.objects.get()
    assert (row.actor_kind, row.actor, row.actor_user_id) == (
        "user",
        ALICE.address.lower(),
        wallet.user_id,
    )
    assert (row.client_address, row.request_id) == ("198.51.100.20", "req-signin-1")
    assert (row.target_type, row.target_id) == ("auth.user", str(wallet.user_id))
    assert row.details == {
        "method": "siwe",
        "account": f"eip155:1:{ALICE.address}",
        "wallet_id": wallet.pk,
        "token_id": token.pk,
        "new_user": True,
    }
    assert response.json()["token"] not in str(row.details)
    assert not rows("auth.token.created")  # the sign-in's token is in the sign-in's row


def test_a_refused_wallet_sign_in_is_recorded_with_the_claimed_address_and_reason():
    client = SignInClient(REMOTE_ADDR="198.51.100.21")
    text = siwe_text(ALICE.address, client.nonce())
    response = client.siwe(text, sign(text, BOB))  # Bob's signature of Alice's message
    assert response.status_code == 401
    row = only("auth.signin.failed")
    assert (row.actor_kind, row.actor, row.actor_user_id) == ("anonymous", "anonymous", None)
    assert row.client_address == "198.51.100.21"
    assert row.request_id == response["X-Request-ID"]
    assert row.details == {
        "method": "siwe",
        "reason": response.json()["reason"],
        "claimed_address": ALICE.address,
    }
    assert not rows("auth.signin.succeeded")


def test_solana_sign_ins_and_their_refusals_are_recorded():
    from solders.keypair import Keypair

    from tests.access.test_siws import siws_text, verify

    keypair, other = Keypair(), Keypair()
    client = SignInClient(REMOTE_ADDR="198.51.100.22")
    text = siws_text(str(keypair.pubkey()), client.nonce("solana"))
    assert verify(client, text, keypair, signer=other).status_code == 401
    assert verify(client, text, keypair).status_code == 200
    refused, succeeded = rows("auth.signin.failed") + rows("auth.signin.succeeded")
    assert refused.details == {
        "method": "solana",
        "reason": "bad_signature",
        "claimed_address": str(keypair.pubkey()),
    }
    assert succeeded.details["account"] == f"solana:mainnet:{keypair.pubkey()}"
    assert succeeded.client_address == refused.client_address == "198.51.100.22"


def test_a_refused_sign_in_of_a_disabled_account_is_recorded_although_it_rolled_back():
    SignInClient().siwe_sign_in(ALICE)
    WalletAccount.objects.get().user.__class__.objects.update(is_active=False)
    response = SignInClient().siwe_sign_in(ALICE)
    assert (response.status_code, response.json()["reason"]) == (401, "account_disabled")
    assert only("auth.signin.failed").details["reason"] == "account_disabled"


@pytest.mark.parametrize(
    ("peer", "forwarded", "recorded"),
    [
        ("10.0.0.5", "198.51.100.7, 10.0.0.9", "198.51.100.7"),  # through our proxies
        ("192.0.2.1", "198.51.100.7", "192.0.2.1"),  # a client writing the header itself
    ],
)
def test_the_address_is_the_trusted_proxy_aware_client(settings, peer, forwarded, recorded):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    UserFactory(username="carol")
    browser = Client(REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    response = browser.post("/signin/", {"username": "carol", "password": "wrong"})
    assert response.status_code == 200  # the form again
    row = only("auth.signin.failed")
    assert row.client_address == recorded
    assert row.details == {
        "method": "password",
        "reason": "bad_credentials",
        "username": "carol",
        "path": "/signin/",
    }
    assert "wrong" not in str(row.details)


@pytest.mark.parametrize(("peer", "believed"), [("10.0.0.5", True), ("192.0.2.1", False)])
def test_behind_proxies_only_a_proxys_request_id_is_believed(settings, peer, believed):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    browser = Client(REMOTE_ADDR=peer, HTTP_X_REQUEST_ID="chosen-id")
    response = browser.post("/signin/", {"username": "nobody", "password": "wrong"})
    row = only("auth.signin.failed")
    assert row.request_id == response["X-Request-ID"]
    assert (row.request_id == "chosen-id") is believed


@pytest.mark.parametrize("door", ["/signin/", "/admin/login/"])
def test_a_password_sign_in_is_recorded_at_both_doors(door):
    staff = StaffFactory(username="root")
    staff.set_password(PASSWORD)
    staff.save()
    response = Client(REMOTE_ADDR="198.51.100.30").post(
        door, {"username": "root", "password": PASSWORD}, HTTP_X_REQUEST_ID="req-pw"
    )
    assert response.status_code == 302
    row = only("auth.signin.succeeded")
    assert (row.actor, row.actor_user_id, row.client_address, row.request_id) == (
        "root",
        staff.pk,
        "198.51.100.30",
        "req-pw",
    )
    assert row.details == {"method": "password", "path": door}


def test_a_locked_out_password_sign_in_says_so(settings):
    settings.AXES_FAILURE_LIMIT = 2
    UserFactory(username="dave")
    browser = Client(REMOTE_ADDR="198.51.100.31")
    tries = [browser.post("/signin/", {"username": "dave", "password": f"w{n}"}) for n in range(3)]
    assert [response.status_code for response in tries] == [200, 429, 429]
    reasons = [row.details["reason"] for row in rows("auth.signin.failed")]
    assert reasons == ["bad_credentials", "locked_out", "locked_out"]


# --- tokens, wallets, signing out everywhere ---------------------------------------------------


def test_tokens_created_and_revoked_through_the_api(client_for):
    user = UserFactory(username="erin")
    api = client_for(user)  # a token made by the fixture: recorded as the system's
    created = api.post("/api/v1/auth/tokens/", {"name": "ci"}, format="json")
    assert created.status_code == 201, created.content
    token_id = created.json()["id"]
    row = rows("auth.token.created")[-1]
    assert (row.actor, row.target_type, row.target_id) == ("erin", "access.apitoken", str(token_id))
    assert row.details == {
        "user_id": user.pk,
        "name": "ci",
        "source": "account",
        "expires_at": None,
        "scopes": ["manage", "playback", "read", "upload"],
    }
    assert created.json()["token"] not in str(row.details)
    assert api.delete(f"/api/v1/auth/tokens/{token_id}/").status_code == 204
    assert api.delete(f"/api/v1/auth/tokens/{token_id}/").status_code == 204  # already revoked
    revoked = only("auth.token.revoked")  # once: the second call changed nothing
    assert (revoked.actor, revoked.target_id) == ("erin", str(token_id))
    assert api.post("/api/v1/auth/logout/").status_code == 204  # revokes the caller's own
    assert len(rows("auth.token.revoked")) == 2


def test_a_token_made_by_the_command_names_the_command():
    call_command("create_api_token", "frank", stdout=io.StringIO(), stderr=io.StringIO())
    row = only("auth.token.created")
    assert (row.actor_kind, row.actor, row.client_address) == ("command", "create_api_token", None)
    assert row.details["source"] == "command"


def test_wallet_link_refusal_and_unlink_through_the_api():
    alice = SignInClient(REMOTE_ADDR="198.51.100.40")
    alice.siwe_sign_in(ALICE)
    linked = alice.siwe_link(BOB)
    assert linked.status_code == 201, linked.content
    row = only("auth.wallet.linked")
    bob_wallet = WalletAccount.objects.get(address=BOB.address)
    assert (row.actor, row.target_type, row.target_id) == (
        ALICE.address.lower(),
        "access.walletaccount",
        str(bob_wallet.pk),
    )
    assert row.details["account"] == f"eip155:1:{BOB.address}"
    assert alice.siwe_link(BOB).status_code == 200  # already linked: nothing new to record
    assert len(rows("auth.wallet.linked")) == 1

    other = SignInClient()
    other.siwe_sign_in(Account_from(0x0C))
    taken = other.siwe_link(BOB)
    assert taken.status_code == 409
    refused = only("auth.wallet.link_failed")
    assert refused.details == {
        "namespace": "eip155",
        "reason": "wallet_linked_elsewhere",
        "claimed_address": BOB.address,
    }

    assert alice.delete(f"/api/v1/auth/wallets/{bob_wallet.pk}/").status_code == 204
    unlinked = only("auth.wallet.unlinked")
    assert (unlinked.target_id, unlinked.client_address) == (str(bob_wallet.pk), "198.51.100.40")
    assert unlinked.details["account"] == f"eip155:1:{BOB.address}"


def Account_from(number: int):  # noqa: N802 - reads like eth_account's Account.from_key
    from eth_account import Account

    return Account.from_key("0x" + "00" * 31 + f"{number:02x}")


def test_signing_out_everywhere_counts_the_revoked_tokens(client_for):
    user = UserFactory(username="gina")
    api = client_for(user)
    response = api.post("/api/v1/auth/logout/everywhere/", {"revoke_api_tokens": True})
    assert response.status_code == 200
    row = only("auth.signout.everywhere")
    assert row.details == {"tokens_revoked": 1, "all_api_tokens": True}
    assert (row.actor, row.target_id) == ("gina", str(user.pk))


# --- gates and the admin -----------------------------------------------------------------------


def test_gate_changes_through_the_api_keep_before_and_after(client_for):
    creator = CreatorFactory(username="hana")
    api = client_for(creator)
    content = ContentFactory(owner=creator)
    url = f"/api/v1/contents/{content.pk}/"
    assert api.patch(url, {"gate": ALLOW_ALICE}, format="json").status_code == 200
    assert api.patch(url, {"title": "Only the title"}, format="json").status_code == 200
    assert api.patch(url, {"gate": None}, format="json").status_code == 200
    first, second = rows("content.gate.changed")  # the title alone is not a gate change
    assert (first.actor, first.target_type, first.target_id) == (
        "hana",
        "content.content",
        str(content.pk),
    )
    assert first.details["before"] is None
    assert first.details["after"] == second.details["before"] == ALLOW_ALICE
    assert second.details["after"] is None


@pytest.fixture
def staff_client():
    staff = StaffFactory(username="ivan", is_superuser=True)
    client = Client(REMOTE_ADDR="198.51.100.50", HTTP_X_REQUEST_ID="req-admin")
    client.force_login(staff)
    return client


def test_admin_changes_to_a_content_a_user_and_tokens_are_recorded(staff_client):
    content = ContentFactory()
    response = staff_client.post(change_url(content), change_form(content, gate=ALLOW_ALICE))
    assert response.status_code == 302
    changed = only("admin.object.changed")
    assert (changed.actor, changed.client_address, changed.request_id) == (
        "ivan",
        "198.51.100.50",
        "req-admin",
    )
    assert (changed.target_type, changed.target_id) == ("content.content", str(content.pk))
    assert changed.details["message"] == [{"changed": {"fields": ["Gate"]}}]
    assert only("content.gate.changed").details["before"] is None  # as stored, not the form's

    user = UserFactory(username="judy")
    response = staff_client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "a-New-pass-123", "password2": "a-New-pass-123", "usable_password": "true"},
    )
    assert response.status_code == 302
    row = rows("admin.object.changed")[-1]
    assert (row.target_type, row.target_id) == ("auth.user", str(user.pk))
    assert "a-New-pass-123" not in str(row.details)

    token, _ = api_token_create(user=user, name="judy's")
    action = {"action": "revoke", "_selected_action": [token.pk]}
    assert staff_client.post("/admin/access/apitoken/", action).status_code == 302
    assert only("auth.token.revoked").actor == "ivan"
    delete = staff_client.post(f"/admin/access/apitoken/{token.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 302
    deleted = only("admin.object.deleted")
    assert (deleted.target_type, deleted.target_id) == ("access.apitoken", str(token.pk))


def test_the_admin_list_filters_and_searches_but_cannot_add_change_or_delete(staff_client):
    with audit_command("test"):
        row = audit_record(event="auth.token.created", target=("access.apitoken", 7))
    other = audit_record(event="auth.signin.failed")
    signed_in = only("auth.signin.succeeded")  # the fixture's force_login (it authenticates)
    base = "/admin/content/auditevent/"
    for query, found in (
        ("", [row, other, signed_in]),
        ("?event=auth.token.created", [row]),
        ("?actor_kind=command", [row]),
        ("?target_type=access.apitoken", [row]),
        (f"?at__year={row.at.year}&at__month={row.at.month}", [row, other, signed_in]),
        ("?q=198.51.100.1", []),
        ("?q=test", [row]),
        ("?q=%27%3B--", []),
    ):
        response = staff_client.get(base + query)
        assert response.status_code == 200, query
        assert set(response.context["cl"].result_list) == set(found), query
    # The list itself was seen by a request with an id: the search by request id finds none
    # of the rows above, which were recorded outside any request.
    assert not staff_client.get(base + "?q=req-admin").context["cl"].result_list
    page = staff_client.get(base).content.decode()
    assert "auth.token.created" in page
    assert f"{base}add/" not in page
    assert 'value="delete_selected"' not in page
    assert staff_client.get(f"{base}add/").status_code == 403
    assert staff_client.post(f"{base}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    view = staff_client.get(f"{base}{row.pk}/change/")
    assert view.status_code == 200
    assert 'name="_save"' not in view.content.decode()
    assert staff_client.post(f"{base}{row.pk}/change/", {"event": "x.y"}).status_code == 403
    assert AuditEvent.objects.get(pk=row.pk).event == "auth.token.created"


# --- key rotation ------------------------------------------------------------------------------


def test_a_key_rotation_by_the_command_is_one_row_per_content_key(settings, media_root):
    from apps.transcode.keys import content_key_new
    from apps.transcode.services.encrypting import Encrypted, encryption_save

    old, new = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    settings.MEDIA_MASTER_KEYS = {"m1": old}
    item = published(media_root)
    encryption_save(
        item.job, Encrypted(prefix="public/x/", hls=content_key_new(), dash=content_key_new())
    )
    settings.MEDIA_MASTER_KEYS, settings.MEDIA_MASTER_KEY_ID = {"m1": old, "m2": new}, "m2"
    call_command("media_keys_rewrap", stdout=io.StringIO())
    row = only("keys.content_key.rewrapped")
    assert (row.actor_kind, row.actor) == ("command", "media_keys_rewrap")
    assert row.details == {"job_id": str(item.job.pk), "from_master": "m1", "to_master": "m2"}
    assert old not in str(row.details)
    assert new not in str(row.details)


# --- append-only, retention --------------------------------------------------------------------


def test_rows_cannot_be_changed_or_deleted_in_python():
    row = audit_record(event="auth.signin.failed")
    row.event = "auth.signin.succeeded"
    with pytest.raises(AuditAppendOnly):
        row.save()
    with pytest.raises(AuditAppendOnly):
        row.delete()
    with pytest.raises(AuditAppendOnly):
        AuditEvent.objects.filter(pk=row.pk).update(event="x.y")
    with pytest.raises(AuditAppendOnly):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditAppendOnly):
        AuditEvent.objects.bulk_update([row], ["event"])
    assert AuditEvent.objects.get().event == "auth.signin.failed"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE content_auditevent SET event = 'x.y'",
        "DELETE FROM content_auditevent",
        "SELECT set_config('streamgate.audit_purge', 'off', true); "
        "UPDATE content_auditevent SET actor = 'someone else'",
    ],
)
def test_postgresql_refuses_raw_updates_and_deletes(statement):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's; SQLite has the Python guard only")
    audit_record(event="auth.signin.failed")
    with pytest.raises(IntegrityError, match="append-only"):
        raw(statement)
    assert AuditEvent.objects.get().event == "auth.signin.failed"


def test_the_purge_setting_opens_deletes_only_not_updates():
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    audit_record(event="auth.signin.failed")
    with pytest.raises(IntegrityError, match="UPDATE"):
        raw(
            "SELECT set_config('streamgate.audit_purge', 'on', true); "
            "UPDATE content_auditevent SET event = 'x.y'"
        )


def test_the_retention_purge_deletes_old_rows_only(settings):
    settings.AUDIT_RETENTION_DAYS = 30
    now = timezone.now()
    with time_machine.travel(now - timedelta(days=31), tick=False):
        audit_record(event="auth.signin.failed", details={"n": "old"})
    with time_machine.travel(now - timedelta(days=29), tick=False):
        audit_record(event="auth.signin.failed", details={"n": "recent"})
    with time_machine.travel(now, tick=False):
        assert audit_purge_task.apply().get() == 1
    kept, purged = AuditEvent.objects.order_by("id")
    assert kept.details == {"n": "recent"}
    assert (purged.event, purged.actor_kind, purged.actor) == (
        "audit.purged",
        "system",
        "task:apps.content.tasks.audit_purge",
    )
    cutoff = (now - timedelta(days=30)).isoformat()[:23] + "Z"  # DjangoJSONEncoder: ms, Z
    assert purged.details == {"rows": 1, "before": cutoff}
    schedule = settings.CELERY_BEAT_SCHEDULE["audit-purge"]
    assert schedule["task"] == audit_purge_task.name
    if connection.vendor == "postgresql":  # the purge's door closed again behind it
        with pytest.raises(IntegrityError):
            raw("DELETE FROM content_auditevent")


def test_retention_zero_keeps_every_row(settings):
    settings.AUDIT_RETENTION_DAYS = 0
    with time_machine.travel(timezone.now() - timedelta(days=3650), tick=False):
        audit_record(event="auth.signin.failed")
    assert audit_purge() == 0
    assert AuditEvent.objects.count() == 1


# --- the recorder's own checks -----------------------------------------------------------------


@pytest.mark.parametrize("event", ["signin", "Auth.Signin", "auth..x", "auth.sign in", "a." * 40])
def test_a_malformed_event_name_is_a_bug_refused_at_once(event):
    with pytest.raises(ValueError, match="dotted"):
        audit_record(event=event)


@pytest.mark.parametrize("key", ["token", "password", "signature", "secret"])
def test_details_never_hold_a_secret(key):
    with pytest.raises(ValueError, match="never hold secrets"):
        audit_record(event="auth.token.created", details={key: "x"})
    assert not AuditEvent.objects.exists()


def test_outside_a_request_the_actor_is_the_system():
    row = audit_record(event="chain.payout.live", target=("chain.payoutchange", 3))
    assert (row.actor_kind, row.actor, row.client_address, row.request_id) == (
        "system",
        "system",
        None,
        "",
    )
