"""The key URLs of encrypted media (apps/access/content_keys.py) and the manifests each viewer
gets for them (apps/access/stream_encrypted.py): only keys are gated."""

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from apps.access.playback import playback_key_id, playback_keys
from apps.access.playback_tokens import KeyGrant, key_token_sign
from apps.transcode.keys import ContentKey, content_key_new
from apps.transcode.models import DeliveryEncryption
from apps.transcode.services.encrypting import Encrypted, encryption_save, job_public_prefix
from tests.access.conftest import published
from tests.access.test_playback import playback_url
from tests.factories import UserFactory, WalletFactory

pytestmark = pytest.mark.django_db

ACCOUNT = "0x" + "66" * 20
GATE = {"allowlist": {"accounts": [f"eip155:1:{ACCOUNT}"]}}
MASTER = (
    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Audio",DEFAULT=YES,URI="media_1.m3u8"\n'
    '#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.64001e,mp4a.40.2",AUDIO="audio"\n'
    "media_0.m3u8\n"
)


def encrypted(media_root, *, gate=GATE):
    item = published(media_root, gate=gate, files={"master.m3u8": MASTER.encode()})
    hls, dash = content_key_new(), content_key_new()
    encryption_save(item.job, Encrypted(prefix=job_public_prefix(item.job), hls=hls, dash=dash))
    return item, hls, dash


def holder():
    viewer = UserFactory()
    WalletFactory(user=viewer, address=ACCOUNT)
    return viewer


def grant(client_for, user, content) -> str:
    """The key token of a real playback grant, from the API."""
    response = client_for(user).post(playback_url(content))
    assert response.status_code == 200, response.content
    return parse_qs(urlsplit(response.json()["hls_url"]).query)["k"][0]


def key_url(content, key: ContentKey, token: str | None) -> str:
    return f"/keys/{content.id}/{key.kid}.key" + (f"?k={token}" if token is not None else "")


def signed(content, viewer, *, expires: int) -> str:
    kid = playback_key_id()
    return key_token_sign(
        KeyGrant(content_id=str(content.id), viewer=viewer, expires=expires),
        kid=kid,
        key=playback_keys()[kid],
    )


def test_a_viewer_the_gate_lets_in_gets_the_16_byte_key_never_cached(media_root, client_for):
    item, hls, _ = encrypted(media_root)
    token = grant(client_for, holder(), item.content)
    response = Client().get(key_url(item.content, hls, token), HTTP_ORIGIN="https://a.example")
    assert response.status_code == 200
    assert response.content == hls.key
    assert len(response.content) == 16
    assert response["Cache-Control"] == "no-store"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_the_key_url_refuses_no_token_a_bad_one_an_expired_one_and_another_contents(
    media_root, client_for
):
    item, hls, _ = encrypted(media_root)
    other, _, _ = encrypted(media_root)
    viewer = holder()
    cases = {
        None: (401, "token_required"),
        "nonsense": (403, "bad_token"),
        signed(item.content, viewer.pk, expires=int(time.time()) - 1): (403, "token_expired"),
        grant(client_for, viewer, other.content): (403, "bad_token"),
    }
    for token, (status, reason) in cases.items():
        response = Client().get(key_url(item.content, hls, token))
        assert (response.status_code, response.json()["reason"]) == (status, reason), token
        assert response["Cache-Control"] == "no-store"


def test_a_viewer_the_gate_refuses_gets_playbacks_reason(media_root):
    item, hls, _ = encrypted(media_root)
    stranger = UserFactory()
    WalletFactory(user=stranger, address="0x" + "77" * 20)
    token = signed(item.content, stranger.pk, expires=int(time.time()) + 60)
    response = Client().get(key_url(item.content, hls, token))
    assert response.status_code == 403
    assert response.json()["reason"] == "gate_denied"
    anyone = signed(item.content, None, expires=int(time.time()) + 60)
    response = Client().get(key_url(item.content, hls, anyone))
    assert (response.status_code, response.json()["reason"]) == (401, "sign_in_required")


def test_revoking_access_fails_the_next_key_fetch(media_root, client_for):
    item, hls, _ = encrypted(media_root)
    viewer = holder()
    token = grant(client_for, viewer, item.content)
    assert Client().get(key_url(item.content, hls, token)).status_code == 200
    item.content.gate = {"allowlist": {"accounts": ["eip155:1:0x" + "88" * 20]}}
    item.content.save(update_fields=["gate"])
    response = Client().get(key_url(item.content, hls, token))
    assert response.status_code == 403


def test_a_key_of_another_job_is_unknown(media_root, client_for):
    item, _, _ = encrypted(media_root)
    token = grant(client_for, holder(), item.content)
    response = Client().get(key_url(item.content, content_key_new(), token))
    assert (response.status_code, response.json()["reason"]) == (404, "unknown_key")


def test_a_clear_content_has_no_key(media_root, client_for):
    item = published(media_root, gate=GATE)
    viewer = holder()
    response = client_for(viewer).post(playback_url(item.content))
    assert "?k=" not in response.json()["hls_url"]  # clear media: no key token to carry
    token = signed(item.content, viewer.pk, expires=int(time.time()) + 60)
    response = Client().get(key_url(item.content, content_key_new(), token))
    assert (response.status_code, response.json()["reason"]) == (404, "not_encrypted")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_clearkey_license_answers_the_dash_key(media_root, client_for):
    item, _, dash = encrypted(media_root)
    token = grant(client_for, holder(), item.content)
    url = f"/keys/{item.content.id}/license?k={token}"
    body = json.dumps({"kids": [b64url(dash.kid.bytes)], "type": "temporary"})
    response = Client().post(url, body, content_type="application/json")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "keys": [{"kty": "oct", "kid": b64url(dash.kid.bytes), "k": b64url(dash.key)}],
        "type": "temporary",
    }
    for bad in ("", "{}", '{"kids": []}', '{"kids": "x"}', "[1]", '{"kids": [5]}'):
        response = Client().post(url, bad, content_type="application/json")
        assert (response.status_code, response.json()["reason"]) == (400, "bad_request"), bad
    other = json.dumps({"kids": [b64url(content_key_new().kid.bytes)]})
    response = Client().post(url, other, content_type="application/json")
    assert (response.status_code, response.json()["reason"]) == (404, "unknown_key")
    assert Client().get(url).status_code == 405


def test_the_master_playlist_of_encrypted_media_defines_the_viewers_key_url(media_root, client_for):
    item, hls, _ = encrypted(media_root)
    response = client_for(holder()).post(playback_url(item.content))
    hls_url = response.json()["hls_url"]
    token = parse_qs(urlsplit(hls_url).query)["k"][0]
    master = Client().get(urlsplit(hls_url).path + "?" + urlsplit(hls_url).query)
    assert master.status_code == 200
    assert master["Cache-Control"] == "private, no-cache"
    text = master.content.decode()
    row = DeliveryEncryption.objects.get(job=item.job)
    public = "/public/" + row.public_prefix.removeprefix("public/") + "hls/"
    assert "#EXT-X-VERSION:8" in text
    assert (
        f'#EXT-X-DEFINE:NAME="sgkey",VALUE="http://testserver/keys/{item.content.id}/'
        f'{hls.kid}.key?k={token}"' in text
    )
    assert f'URI="{public}media_1.m3u8"' in text
    assert f"\n{public}media_0.m3u8\n" in text
