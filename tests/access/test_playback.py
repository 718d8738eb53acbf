"""Playback: who gets signed stream URLs, and what the stream views serve to whom."""

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from django.test import Client

from apps.access.playback import playback_key_id, playback_keys
from apps.access.playback_tokens import PlaybackGrant, token_sign
from apps.content.models import ContentStatus
from tests.access.conftest import published
from tests.factories import ContentFactory, UserFactory, WalletFactory

pytestmark = pytest.mark.django_db

SEGMENT = bytes(range(256)) * 40  # 10 KiB


def playback_url(content) -> str:
    return f"/api/v1/contents/{content.id}/playback/"


def path_of(url: str) -> str:
    return urlsplit(url).path


def grant_for(content, *, expires=None, job=None, subject="-") -> PlaybackGrant:
    return PlaybackGrant(
        content_id=str(content.id),
        job_id=uuid.UUID(str(job or content.published_job_id)).hex,
        subject=subject,
        expires=int(expires if expires is not None else time.time() + 600),
    )


def signed(content, **grant) -> str:
    kid = playback_key_id()
    return token_sign(grant_for(content, **grant), kid=kid, key=playback_keys()[kid])


@pytest.fixture
def ready(media_root):
    return published(
        media_root,
        files={
            "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia_0.m3u8\n",
            "manifest.mpd": b"<MPD/>",
            "chunk-stream0-00001.m4s": SEGMENT,
            "storyboard/sprite-001.jpg": b"\xff\xd8jpeg",
        },
    )


def test_open_content_plays_for_anyone(api_client, ready, django_assert_num_queries):
    response = api_client.post(playback_url(ready.content))
    assert response.status_code == 200, response.content
    body = response.json()
    assert response["Cache-Control"] == "no-store"
    assert body["hls_url"].startswith("http://testserver/stream/")
    assert body["hls_url"].endswith(f"/{ready.content.id}/master.m3u8")
    assert body["dash_url"].endswith(f"/{ready.content.id}/manifest.mpd")
    client = Client()
    # The token alone decides; the one query asks for the content's captions, which the
    # manifests list (none here: the stored playlist is served).
    with django_assert_num_queries(1):
        master = client.get(path_of(body["hls_url"]))
    assert master.status_code == 200
    assert master["Content-Type"] == "application/vnd.apple.mpegurl"
    assert master["Cache-Control"] == "private, no-cache"
    assert master.content.startswith(b"#EXTM3U")
    # Relative URIs resolve under the same token; segments need no database query.
    with django_assert_num_queries(0):
        segment = client.get(
            path_of(body["hls_url"]).replace("master.m3u8", "chunk-stream0-00001.m4s")
        )
    assert segment.content == SEGMENT
    assert segment["Content-Type"] == "video/iso.segment"
    assert segment["Cache-Control"] == "private, max-age=31536000, immutable"
    sprite = client.get(
        path_of(body["hls_url"]).replace("master.m3u8", "storyboard/sprite-001.jpg")
    )
    assert sprite["Content-Type"] == "image/jpeg"


def test_a_token_outlives_one_viewing_of_the_content(api_client, media_root, settings):
    long = published(media_root, duration=3 * 3600)
    expires = api_client.post(playback_url(long.content)).json()["expires_at"]
    from datetime import UTC, datetime

    lifetime = (datetime.fromisoformat(expires) - datetime.now(UTC)).total_seconds()
    assert 3 * 3600 + 800 < lifetime <= 3 * 3600 + 900
    settings.PLAYBACK_TOKEN_MAX_TTL = 3600
    expires = api_client.post(playback_url(long.content)).json()["expires_at"]
    lifetime = (datetime.fromisoformat(expires) - datetime.now(UTC)).total_seconds()
    assert lifetime <= 3600


@pytest.mark.parametrize(
    "status", [ContentStatus.DRAFT, ContentStatus.PROCESSING, ContentStatus.FAILED]
)
def test_content_that_is_not_ready_never_plays(client_for, status):
    content = ContentFactory(status=status)
    response = client_for(content.owner).post(playback_url(content))
    assert response.status_code == 409
    assert response.json()["reason"] == "not_ready"
    # Someone else does not even see it.
    assert client_for(UserFactory()).post(playback_url(content)).status_code == 404


def test_gated_content_needs_a_signed_in_caller(api_client, media_root, client_for):
    gate = {"allowlist": {"accounts": ["eip155:1:0x" + "11" * 20]}}
    gated = published(media_root, gate=gate)
    response = api_client.post(playback_url(gated.content))
    assert response.status_code == 401
    assert response.json()["reason"] == "sign_in_required"
    response = client_for(UserFactory()).post(playback_url(gated.content))
    assert response.status_code == 403
    assert response.json()["reason"] == "no_wallet"
    stranger = UserFactory()
    WalletFactory(user=stranger, address="0x" + "22" * 20)
    response = client_for(stranger).post(playback_url(gated.content))
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Your wallets do not meet the gate: none of your wallets is listed",
        "reason": "gate_denied",
    }
    listed = UserFactory()
    WalletFactory(user=listed, address="0x" + "11" * 20)
    assert client_for(listed).post(playback_url(gated.content)).status_code == 200
    assert client_for(gated.content.owner).post(playback_url(gated.content)).status_code == 200


def test_tampered_tokens_are_refused(ready):
    token = signed(ready.content)
    client = Client()
    assert client.get(f"/stream/{token}/{ready.content.id}/master.m3u8").status_code == 200
    for index in (0, token.index(".") + 1, len(token) // 2, len(token) - 1):
        character = token[index]
        replacement = "a" if character != "a" else "b"
        bad = token[:index] + replacement + token[index + 1 :]
        response = client.get(f"/stream/{bad}/{ready.content.id}/master.m3u8")
        assert response.status_code == 403, bad
        assert response.json()["reason"] == "bad_token"
    for bad in ("x", token + "x", token.replace(".", "", 1)):
        response = client.get(f"/stream/{bad}/{ready.content.id}/master.m3u8")
        assert (response.status_code, response.json()["reason"]) == (403, "bad_token"), bad
    # No token at all is no stream URL at all.
    assert client.get(f"/stream//{ready.content.id}/master.m3u8").status_code == 404


def test_expired_tokens_are_refused(ready):
    token = signed(ready.content, expires=time.time() - 1)
    response = Client().get(f"/stream/{token}/{ready.content.id}/master.m3u8")
    assert response.status_code == 403


def test_a_token_for_another_content_is_refused(ready, media_root):
    other = published(media_root)
    token = signed(other.content)
    assert Client().get(f"/stream/{token}/{other.content.id}/master.m3u8").status_code == 200
    assert Client().get(f"/stream/{token}/{ready.content.id}/master.m3u8").status_code == 403
    # Nor can a token be pointed at another content's job folder.
    forged = signed(ready.content, job=other.job.id)
    assert Client().get(f"/stream/{forged}/{ready.content.id}/master.m3u8").status_code == 404


@pytest.mark.parametrize(
    "name",
    [
        "../../../../etc/passwd",
        "..%2f..%2fsecret",
        "storyboard/../../../x",
        "storyboard/sub/deep.jpg",
        ".hidden",
        "a/../master.m3u8",
        "%2e%2e/master.m3u8",
    ],
)
def test_path_traversal_is_a_404(ready, name):
    token = signed(ready.content)
    assert Client().get(f"/stream/{token}/{ready.content.id}/{name}").status_code == 404


def test_missing_files_are_a_404_and_writes_are_refused(ready):
    token = signed(ready.content)
    base = f"/stream/{token}/{ready.content.id}/"
    assert Client().get(base + "nope.m4s").status_code == 404
    assert Client().post(base + "master.m3u8").status_code == 405


def test_range_requests(ready):
    url = f"/stream/{signed(ready.content)}/{ready.content.id}/chunk-stream0-00001.m4s"
    client = Client()
    response = client.get(url, HTTP_RANGE="bytes=100-199")
    assert response.status_code == 206
    assert response.content == SEGMENT[100:200]
    assert response["Content-Range"] == f"bytes 100-199/{len(SEGMENT)}"
    assert response["Content-Length"] == "100"
    assert client.get(url, HTTP_RANGE="bytes=-10").content == SEGMENT[-10:]
    assert client.get(url, HTTP_RANGE="bytes=10000-").content == SEGMENT[10000:]
    tail = client.get(url, HTTP_RANGE="bytes=10230-99999")
    assert tail.content == SEGMENT[10230:]
    unsatisfiable = client.get(url, HTTP_RANGE="bytes=99999-")
    assert unsatisfiable.status_code == 416
    assert unsatisfiable["Content-Range"] == f"bytes */{len(SEGMENT)}"
    # Several ranges, or nonsense: the whole file (RFC 9110 lets a server ignore Range).
    huge = "1" * 5000  # past Python's int() digit limit: ignored, not a 500
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=5-1", f"bytes={huge}-", "bytes=٣-"):
        whole = client.get(url, HTTP_RANGE=header)
        assert whole.status_code == 200
        assert whole.content == SEGMENT
    head = client.head(url)
    assert head.status_code == 200
    assert head["Content-Length"] == str(len(SEGMENT))
    assert head["Accept-Ranges"] == "bytes"
    assert head.content == b""


def test_keys_rotate(ready, settings):
    settings.PLAYBACK_KEYS = {"old": "o" * 32}
    settings.PLAYBACK_KEY_ID = "old"
    old_token = signed(ready.content)
    settings.PLAYBACK_KEYS = {"new": "n" * 32, "old": "o" * 32}
    settings.PLAYBACK_KEY_ID = "new"
    new_token = signed(ready.content)
    assert new_token.startswith("new.")
    client = Client()
    for token in (old_token, new_token):
        assert client.get(f"/stream/{token}/{ready.content.id}/master.m3u8").status_code == 200
    settings.PLAYBACK_KEYS = {"new": "n" * 32}  # the old key retired
    assert client.get(f"/stream/{old_token}/{ready.content.id}/master.m3u8").status_code == 403


def test_x_accel_redirect_hands_the_bytes_to_nginx(ready, settings):
    settings.STREAM_ACCEL_REDIRECT = "/protected/"
    token = signed(ready.content)
    response = Client().get(f"/stream/{token}/{ready.content.id}/chunk-stream0-00001.m4s")
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == (
        f"/protected/{ready.job.output_prefix}chunk-stream0-00001.m4s"
    )
    assert response.content == b""
    assert response["Content-Type"] == "video/iso.segment"


class SlowNode:
    """An RPC endpoint that answers nothing for ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                node.calls += 1
                node.stopped.wait(delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"jsonrpc":"2.0","id":1,"result":"0xa"}')

        self.calls = 0
        self.stopped = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.httpd.shutdown()


def test_a_node_that_times_out_gives_503_never_a_yes(media_root, client_for, settings):
    settings.GATE_RPC_TIMEOUT = 0.3
    holder = "0x" + "33" * 20
    gate = {"erc721": {"chain": "eip155:10", "contract": "0x" + "44" * 20, "token_id": None}}
    gated = published(media_root, gate=gate)
    viewer = UserFactory()
    WalletFactory(user=viewer, address=holder)
    with SlowNode(delay=3) as node:
        settings.CHAIN_RPC_URLS = {"eip155:10": node.url}
        started = time.monotonic()
        response = client_for(viewer).post(playback_url(gated.content))
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["reason"] == "chain_unavailable"
    assert "eip155:10" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0
    assert elapsed < 2
    assert node.calls == 1  # one attempt: no retries behind the viewer's back


def test_a_stored_gate_on_a_chain_without_rpc_is_refused_once_naming_the_chain(
    media_root, client_for, settings
):
    """Saved before such gates were refused: no retry could ever decide it, so the answer is
    a 403 that names the chain, not a 503 asking the player to retry for ever."""
    settings.CHAIN_RPC_URLS = {"eip155:1": "http://127.0.0.1:9/"}
    gate = {"erc721": {"chain": "eip155:10", "contract": "0x" + "44" * 20, "token_id": None}}
    gated = published(media_root, gate=gate)
    viewer = UserFactory()
    WalletFactory(user=viewer)
    response = client_for(viewer).post(playback_url(gated.content))
    assert response.status_code == 403
    assert response.json()["reason"] == "chain_not_configured"
    assert "eip155:10" in response.json()["detail"]
    assert "Retry-After" not in response

    settings.CHAIN_RPC_URLS = {"eip155:10": "http://127.0.0.1:9/"}  # configured, but down
    response = client_for(viewer).post(playback_url(gated.content))
    assert response.status_code == 503
    assert response.json()["reason"] == "chain_unavailable"


def test_an_unknown_that_a_configured_chain_may_settle_stays_a_503(
    media_root, client_for, settings
):
    settings.CHAIN_RPC_URLS = {"eip155:1": "http://127.0.0.1:9/"}  # nothing listens there
    contract = "0x" + "44" * 20
    gate = {
        "any": [
            {"erc721": {"chain": "eip155:10", "contract": contract, "token_id": None}},
            {"erc721": {"chain": "eip155:1", "contract": contract, "token_id": None}},
        ]
    }
    gated = published(media_root, gate=gate)
    viewer = UserFactory()
    WalletFactory(user=viewer)
    response = client_for(viewer).post(playback_url(gated.content))
    assert response.status_code == 503
    assert response.json()["reason"] == "chain_unavailable"
    assert int(response["Retry-After"]) > 0


def test_a_failing_chain_does_not_block_a_gate_another_branch_decides(
    media_root, client_for, settings
):
    settings.CHAIN_RPC_URLS = {}
    account = "0x" + "55" * 20
    gate = {
        "any": [
            {"erc721": {"chain": "eip155:10", "contract": "0x" + "44" * 20, "token_id": None}},
            {"allowlist": {"accounts": [f"eip155:1:{account}"]}},
        ]
    }
    gated = published(media_root, gate=gate)
    viewer = UserFactory()
    WalletFactory(user=viewer, address=account)
    assert client_for(viewer).post(playback_url(gated.content)).status_code == 200


def test_a_gate_saved_before_validation_existed_lets_nobody_in(media_root, client_for):
    gated = published(media_root, gate={"erc721": {"chain": "nope"}})
    viewer = UserFactory()
    WalletFactory(user=viewer)
    response = client_for(viewer).post(playback_url(gated.content))
    assert response.status_code == 403
    assert response.json()["reason"] == "gate_invalid"
