"""Token scopes: each endpoint's declared scope, the 403 a token without it gets, what a token
may create, the command, the migration that gave old tokens every scope."""

import io
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from apps.access.models import ApiToken, WalletAccount
from apps.access.services import api_token_create
from apps.content.consumers import CLOSE_NOT_SIGNED_IN
from apps.content.models import Content, ContentStatus
from apps.content.scopes import NO_SCOPE, SCOPES, required_scope_of
from streamgate.asgi import application
from tests.access.conftest import ALICE, published
from tests.factories import ContentFactory

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/auth/tokens/"
ALL = sorted(SCOPES)


def bearer(clear: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    return client


def token_with(user, *scopes: str) -> str:
    return api_token_create(user=user, name="scoped", scopes=scopes)[1]


def missing(response, scope: str) -> None:
    assert response.status_code == 403, response.content
    assert response.json() == {
        "detail": f"This token lacks the '{scope}' scope.",
        "reason": "missing_scope",
        "required_scope": scope,
    }


# --- every view declares its scope -------------------------------------------------------------


def _api_views(patterns, prefix: str = "") -> Iterator[tuple[str, type]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.lstrip("^").startswith("api/v1/"):
            view = getattr(pattern.callback, "cls", None) or getattr(
                pattern.callback, "view_class", None
            )
            yield route, view


# Views that act for no token's user: signing in, and a token logging itself out.
NO_SCOPE_VIEWS = {"SiweNonceView", "SolanaNonceView", "SiweVerifyView", "SolanaVerifyView"}
NO_SCOPE_VIEWS |= {"LogoutView"}


def test_every_api_view_declares_the_scope_each_of_its_methods_needs():
    found = list(_api_views(get_resolver().url_patterns))
    assert len(found) > 25  # the walk reached the API's includes
    for route, view in found:
        assert view is not None, f"{route} is not a DRF view: no scope can be checked"
        assert hasattr(view, "required_scope"), f"{view.__name__} ({route}) has no required_scope"
        methods = [m.upper() for m in view.http_method_names if hasattr(view, m)]
        if hasattr(view, "get_extra_actions"):  # a viewset: its router names its methods
            methods = ["GET", "POST", "PATCH", "DELETE"]
        for method in methods:
            scope = required_scope_of(view, method)
            if method == "OPTIONS" or view.__name__ in NO_SCOPE_VIEWS:
                assert scope is NO_SCOPE, (route, method)
            else:
                assert scope in SCOPES, f"{view.__name__} {method} ({route}): {scope!r}"


def test_a_view_that_declares_nothing_needs_manage():
    class Undeclared:
        pass

    assert required_scope_of(Undeclared(), "GET") == "manage"
    assert required_scope_of(Undeclared(), "OPTIONS") is None


# --- a token without the scope gets 403 naming it ---------------------------------------------


def test_read_needs_the_read_scope(creator):
    content = ContentFactory(owner=creator, status=ContentStatus.READY)
    client = bearer(token_with(creator, "upload", "manage", "playback"))
    missing(client.get("/api/v1/contents/"), "read")
    missing(client.get(f"/api/v1/contents/{content.id}/"), "read")
    missing(client.get("/api/v1/sales/"), "read")
    missing(client.get("/api/v1/auth/me/"), "read")
    ok = bearer(token_with(creator, "read")).get(f"/api/v1/contents/{content.id}/")
    assert ok.status_code == 200
    assert ok.json()["title"] == content.title


def test_manage_needs_the_manage_scope(creator):
    content = ContentFactory(owner=creator, status=ContentStatus.READY, title="Before")
    client = bearer(token_with(creator, "read", "upload", "playback"))
    missing(client.patch(f"/api/v1/contents/{content.id}/", {"title": "After"}), "manage")
    missing(client.delete(f"/api/v1/contents/{content.id}/"), "manage")
    missing(client.post(f"/api/v1/contents/{content.id}/retry/"), "manage")
    missing(client.put(f"/api/v1/contents/{content.id}/offers/", {}, format="json"), "manage")
    missing(client.get(TOKENS), "manage")
    content.refresh_from_db()
    assert content.title == "Before"
    managed = bearer(token_with(creator, "manage")).patch(
        f"/api/v1/contents/{content.id}/", {"title": "After"}, format="json"
    )
    assert managed.status_code == 200, managed.content
    assert managed.json()["title"] == "After"


def test_playback_needs_the_playback_scope(creator, media_root):
    content = published(media_root).content
    url = f"/api/v1/contents/{content.id}/playback/"
    missing(bearer(token_with(creator, "read", "upload", "manage")).post(url), "playback")
    # A player backend's playback-only token gets its grants (and nothing else).
    player = bearer(token_with(creator, "playback"))
    granted = player.post(url)
    assert granted.status_code == 200, granted.content
    assert granted.json()["hls_url"].endswith("/master.m3u8")
    missing(player.get(f"/api/v1/contents/{content.id}/"), "read")


def test_creating_a_draft_needs_the_upload_scope(creator):
    missing(
        bearer(token_with(creator, "read", "manage")).post(
            "/api/v1/contents/", {"title": "Draft"}, format="json"
        ),
        "upload",
    )
    created = bearer(token_with(creator, "upload")).post(
        "/api/v1/contents/", {"title": "Draft"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert Content.objects.filter(owner=creator, title="Draft").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_tus_upload_needs_the_upload_scope(live_server):
    """tuspy, a real tus client, creating an upload over HTTP against a running server."""
    from tests.factories import CreatorFactory

    creator = CreatorFactory()
    url = f"{live_server.url}/api/v1/uploads/"

    def upload(token: str) -> str:
        client = tus_client.TusClient(url, headers={"Authorization": f"Bearer {token}"})
        uploader = client.uploader(
            file_stream=io.BytesIO(b"x" * 1000), chunk_size=1000, metadata={"filename": "a.mp4"}
        )
        return uploader.create_url()

    with pytest.raises(TusCommunicationError) as refused:
        upload(token_with(creator, "read", "manage", "playback"))
    assert refused.value.status_code == 403
    assert b'"reason":"missing_scope","required_scope":"upload"' in refused.value.response_content
    assert not creator.uploads.exists()
    location = upload(token_with(creator, "upload"))
    assert location.startswith(f"{live_server.url}/api/v1/uploads/")
    assert creator.uploads.count() == 1


def test_tus_discovery_needs_no_scope(creator):
    response = bearer(token_with(creator, "playback")).options("/api/v1/uploads/")
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"


def test_a_session_is_not_scoped(creator, media_root):
    content = published(media_root, owner=creator).content
    client = APIClient()
    client.force_login(creator)
    assert client.get(f"/api/v1/contents/{content.id}/").status_code == 200
    assert client.post(f"/api/v1/contents/{content.id}/playback/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_progress_websocket_needs_the_read_scope(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.ALLOWED_HOSTS = ["video.example"]
    content = ContentFactory(status=ContentStatus.DRAFT)
    without_read = token_with(content.owner, "upload", "manage", "playback")
    with_read = token_with(content.owner, "read")

    async def first_message(token: str):
        headers = [(b"host", b"video.example"), (b"authorization", f"Bearer {token}".encode())]
        communicator = WebsocketCommunicator(
            application, f"/ws/contents/{content.id}/", headers=headers
        )
        await communicator.connect(timeout=5)
        try:
            return await communicator.receive_output(timeout=5)
        finally:
            await communicator.disconnect(timeout=5)

    refused = async_to_sync(first_message)(without_read)
    assert refused == {"type": "websocket.close", "code": CLOSE_NOT_SIGNED_IN}
    served = async_to_sync(first_message)(with_read)
    assert served["type"] == "websocket.send"
    assert '"status": "draft"' in served["text"] or '"status":"draft"' in served["text"]


# --- which tokens hold which scopes ---------------------------------------------------------


def test_a_token_created_without_a_choice_holds_every_scope(creator):
    token, _ = api_token_create(user=creator)
    assert token.scopes == ALL
    client = APIClient()
    client.force_login(creator)
    created = client.post(TOKENS, {"name": "all"}, format="json")
    assert created.status_code == 201
    assert created.json()["scopes"] == ALL


def test_a_wallet_sign_in_token_holds_every_scope(signin_client):
    signed_in = signin_client.siwe_sign_in(ALICE)
    assert signed_in.status_code == 200, signed_in.content
    wallet = WalletAccount.objects.get(address=ALICE.address)
    assert ApiToken.objects.get(wallet=wallet).scopes == ALL
    assert bearer(signed_in.json()["token"]).get(TOKENS).status_code == 200  # manage


def test_the_account_api_creates_a_token_with_the_scopes_chosen(viewer):
    client = APIClient()
    client.force_login(viewer)
    created = client.post(
        TOKENS, {"name": "player", "scopes": ["playback", "read", "read"]}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["scopes"] == ["playback", "read"]
    assert ApiToken.objects.get(pk=created.json()["id"]).scopes == ["playback", "read"]
    assert client.get(TOKENS).json()[0]["scopes"] == ["playback", "read"]
    missing(bearer(created.json()["token"]).get(TOKENS), "manage")


@pytest.mark.parametrize(
    ("scopes", "reason", "detail"),
    [
        (["read", "admin"], "unknown_scope", "Unknown scope 'admin'"),
        (["READ", "write"], "unknown_scope", "Unknown scope 'write'"),
        ([], "no_scope", "Choose at least one scope"),
        ([","], "no_scope", "Choose at least one scope"),
    ],
)
def test_the_account_api_refuses_unknown_or_no_scopes(viewer, scopes, reason, detail):
    client = APIClient()
    client.force_login(viewer)
    response = client.post(TOKENS, {"name": "bad", "scopes": scopes}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["reason"] == reason
    assert response.json()["detail"].startswith(detail)
    assert not ApiToken.objects.filter(user=viewer).exists()


def test_scopes_must_be_a_list_of_names(viewer):
    client = APIClient()
    client.force_login(viewer)
    response = client.post(TOKENS, {"name": "bad", "scopes": "read"}, format="json")
    assert response.status_code == 400
    assert "scopes" in response.json()


def test_a_token_cannot_create_a_token_with_scopes_it_lacks(viewer):
    creator_token = bearer(token_with(viewer, "manage", "read"))
    refused = creator_token.post(
        TOKENS, {"name": "wider", "scopes": ["read", "upload", "playback"]}, format="json"
    )
    assert refused.status_code == 403, refused.content
    assert refused.json() == {
        "detail": "This token cannot create a token with scopes it lacks: playback, upload.",
        "reason": "scope_escalation",
        "scopes": ["playback", "upload"],
    }
    assert ApiToken.objects.filter(user=viewer).count() == 1
    # No choice: the new token gets the asking token's scopes, not every scope.
    same = creator_token.post(TOKENS, {"name": "same"}, format="json")
    assert same.status_code == 201
    assert same.json()["scopes"] == ["manage", "read"]
    narrower = creator_token.post(TOKENS, {"name": "narrow", "scopes": ["read"]}, format="json")
    assert narrower.status_code == 201
    assert narrower.json()["scopes"] == ["read"]
    # Without manage a token creates none at all.
    missing(bearer(narrower.json()["token"]).post(TOKENS, {"name": "x"}, format="json"), "manage")


# --- create_api_token --scope ---------------------------------------------------------------


def test_create_api_token_takes_scopes_repeated_or_comma_separated(db):
    out = io.StringIO()
    call_command(
        "create_api_token", "robot", "--scope", "read", "--scope", "upload,playback", stdout=out
    )
    token = ApiToken.objects.get(user__username="robot")
    assert token.scopes == ["playback", "read", "upload"]
    missing(bearer(out.getvalue().strip()).get(TOKENS), "manage")
    call_command("create_api_token", "robot", "--name", "full", stdout=io.StringIO())
    assert ApiToken.objects.get(name="full").scopes == ALL


@pytest.mark.parametrize(
    ("scopes", "message"), [(["read", "root"], "Unknown scope 'root'"), ([","], "Choose at least")]
)
def test_create_api_token_refuses_an_unknown_scope(db, scopes, message):
    args = [arg for scope in scopes for arg in ("--scope", scope)]
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", "robot", *args, stdout=io.StringIO())
    assert not ApiToken.objects.exists()


# --- the migration: tokens from before scopes keep full access --------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_token_from_before_scopes_keeps_full_access(media_root):
    """Migrates access back to before scopes, stores a token there, migrates forward."""
    executor = MigrationExecutor(connection)
    before, after = [("access", "0007_token_wallet")], [("access", "0008_token_scopes")]
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        user = old.get_model("auth", "User").objects.create(username="old-timer")
        clear = "sg_" + "o" * 43
        from apps.access.tokens import token_hash

        old.get_model("access", "ApiToken").objects.create(
            user=user, name="old", prefix=clear[:10], key_hash=token_hash(clear)
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
    token = ApiToken.objects.get(name="old")
    assert token.scopes == ALL
    content = published(media_root, owner_id=token.user_id).content
    client = bearer(clear)
    assert client.get(f"/api/v1/contents/{content.id}/").status_code == 200
    assert client.get(TOKENS).status_code == 200
    assert client.post(f"/api/v1/contents/{content.id}/playback/").status_code == 200


# --- the OpenAPI schema documents them --------------------------------------------------------


def test_the_schema_lists_the_scopes_and_each_operation_s_scope(client):
    import yaml

    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    description = schema["components"]["securitySchemes"]["bearerAuth"]["description"]
    for scope in SCOPES:
        assert f"- `{scope}`: " in description
    paths = schema["paths"]
    expected = {
        ("/api/v1/contents/", "get"): "read",
        ("/api/v1/contents/", "post"): "upload",
        ("/api/v1/contents/{id}/", "patch"): "manage",
        ("/api/v1/contents/{content_id}/playback/", "post"): "playback",
        ("/api/v1/uploads/", "post"): "upload",
        ("/api/v1/auth/tokens/", "post"): "manage",
        ("/api/v1/auth/siwe/verify/", "post"): None,
    }
    for (path, method), scope in expected.items():
        operation = paths[path][method]
        assert operation["x-required-scope"] == scope, (path, method)
        assert (f"Bearer token scope: `{scope}`." if scope else "none needed") in operation[
            "description"
        ]
    every = [op for ops in paths.values() for op in ops.values() if isinstance(op, dict)]
    assert all("x-required-scope" in op for op in every)


def test_the_schema_is_served_to_any_token(db, viewer):
    response = bearer(token_with(viewer, "playback")).get("/api/schema/")
    assert response.status_code == 200
