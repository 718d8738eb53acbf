"""tus PATCHes appended before Django (apps/access/upload_fast.py) get the answers Django's view
gives: each case goes through Django alone and through the fast layer in front of it, on two
uploads alike, and the answers are compared (status, JSON body, headers but Date, Server, the
drawn X-Request-ID and Upload-Expires, which moves with the clock). Where the layer must not
answer, it passes the request, body included, before reading any of it; its metric says which
happened. Errors met while the body streams are answered by the layer itself, as the view
raises them."""

import base64
import hashlib
import os
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.access.services import api_token_create
from apps.access.upload_fast import UploadPatchFast
from apps.uploads.models import Upload, UploadState
from apps.uploads.services.creating import upload_create
from streamgate.streaming import StreamingBodyASGIHandler
from tests.factories import CreatorFactory

pytestmark = pytest.mark.django_db(transaction=True)

PER_REQUEST = {"date", "server", "x-request-id", "upload-expires"}
MIB = 1024 * 1024


def counted(outcome: str) -> float:
    sample = REGISTRY.get_sample_value
    return sample("streamgate_upload_fast_responses_total", {"outcome": outcome}) or 0


@pytest.fixture
def creator():
    return CreatorFactory()


@pytest.fixture
def token(creator) -> str:
    return api_token_create(user=creator)[1]


def new_upload(owner, length: int) -> Upload:
    return upload_create(owner=owner, length=length, metadata_header=None)


def patch(app, upload: Upload, body: bytes, token: str, *, offset: int = 0, **extra) -> dict:
    headers = {
        "host": "testserver",
        "authorization": f"Bearer {token}",
        "tus-resumable": "1.0.0",
        "content-type": "application/offset+octet-stream",
        "upload-offset": str(offset),
        "content-length": str(len(body)),
        **{name.replace("_", "-").lower(): value for name, value in extra.items()},
    }
    sent = [(n.encode(), v.encode()) for n, v in headers.items() if v is not None]

    async def go():
        communicator = HttpCommunicator(
            app, "PATCH", f"/api/v1/uploads/{upload.id}", body=body, headers=sent
        )
        response = await communicator.get_response(timeout=20)
        # Until the app returns: Django closes the request's database connection (gives it back
        # to the pool) after it has sent the answer.
        await communicator.wait(timeout=10)
        return response

    response = async_to_sync(go)()
    response["headers"] = {n.decode().lower(): v.decode() for n, v in response["headers"]}
    return response


def both(owner, length: int, body: bytes, token: str, **extra):
    """(Django's answer, the layer's answer, whether the layer served it, the two uploads)."""
    django_app = StreamingBodyASGIHandler()
    first, second = new_upload(owner, length), new_upload(owner, length)
    reference = patch(django_app, first, body, token, **extra)
    before = counted("served")
    answer = patch(UploadPatchFast(django_app), second, body, token, **extra)
    return reference, answer, counted("served") > before, first, second


def same(reference: dict, answer: dict) -> None:
    assert answer["status"] == reference["status"]
    assert answer["body"] == reference["body"]
    theirs = {k: v for k, v in reference["headers"].items() if k not in PER_REQUEST}
    ours = {k: v for k, v in answer["headers"].items() if k not in PER_REQUEST}
    assert ours == theirs
    assert ("upload-expires" in answer["headers"]) == ("upload-expires" in reference["headers"])
    assert "x-request-id" in answer["headers"]


def stored(upload: Upload, media_root) -> bytes:
    return (media_root / upload.incoming_path).read_bytes()


def test_a_patch_is_appended_and_answered_as_the_view_does(creator, token, media_root):
    body = os.urandom(3 * MIB + 17)
    reference, answer, fast, first, second = both(creator, 8 * MIB, body, token)
    assert reference["status"] == 204, reference
    same(reference, answer)
    assert fast
    assert answer["headers"]["upload-offset"] == str(len(body))
    for upload in (first, second):
        upload.refresh_from_db()
        assert upload.offset == len(body)
        assert upload.lock_token == ""  # the lease was given up with the last commit
        assert upload.lock_expires_at is None
        assert stored(upload, media_root) == body


def test_the_last_byte_completes_the_upload(creator, token, media_root):
    body = os.urandom(MIB)
    reference, answer, fast, first, second = both(creator, len(body), body, token)
    assert reference["status"] == 204, reference
    same(reference, answer)
    assert fast
    assert "upload-expires" not in answer["headers"]
    second.refresh_from_db()
    assert second.state == UploadState.COMPLETE
    assert second.content.status == "queued" or second.content.progress == 100


def test_a_checksum_mismatch_is_answered_460_and_the_chunk_discarded(creator, token, media_root):
    body = os.urandom(MIB)
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    reference, answer, fast, first, second = both(
        creator, 4 * MIB, body, token, upload_checksum=f"sha256 {wrong}"
    )
    assert reference["status"] == 460, reference
    same(reference, answer)
    assert fast
    second.refresh_from_db()
    assert second.offset == 0
    assert second.lock_token == ""
    assert stored(second, media_root) == b""


def test_a_matching_checksum_is_accepted(creator, token, media_root):
    body = os.urandom(MIB)
    digest = base64.b64encode(hashlib.sha1(body, usedforsecurity=False).digest()).decode()
    reference, answer, fast, _, second = both(
        creator, 4 * MIB, body, token, upload_checksum=f"sha1 {digest}"
    )
    assert reference["status"] == 204, reference
    same(reference, answer)
    assert fast
    assert stored(second, media_root) == body


def test_a_body_past_upload_length_without_content_length_is_413(creator, token, media_root):
    body = os.urandom(2 * MIB)
    reference, answer, fast, _, second = both(creator, MIB, body, token, content_length=None)
    assert reference["status"] == 413, reference
    same(reference, answer)
    assert fast
    second.refresh_from_db()
    assert second.lock_token == ""


def other_token(creator):
    return api_token_create(user=CreatorFactory())[1]


def no_upload_scope(creator):
    return api_token_create(user=creator, scopes=["read"])[1]


@pytest.mark.parametrize(
    ("case", "extra", "status"),
    [
        ("wrong offset", {"offset": 5}, 409),
        ("invalid token", {"token": "not-a-token"}, 401),
        ("token without the upload scope", {"token": no_upload_scope}, 403),
        ("another creator's upload", {"token": other_token}, 404),
        ("no Tus-Resumable", {"tus_resumable": None}, 412),
        ("wrong content type", {"content_type": "application/octet-stream"}, 415),
        ("bad Upload-Offset", {"upload_offset": "٣"}, 400),
        ("bad checksum header", {"upload_checksum": "crc32 AAAA"}, 400),
        ("past Upload-Length", {"content_length": str(9 * MIB)}, 413),
        ("a cookie", {"cookie": "sessionid=nothing"}, 204),
        ("an Origin", {"origin": "https://elsewhere.example"}, 204),
        ("a method override", {"x_http_method_override": "PATCH"}, 204),
        ("bad host", {"host": "evil.example"}, 400),
    ],
)
def test_everything_else_is_django_s_answer(creator, token, media_root, case, extra, status):
    extra = dict(extra)
    chosen = extra.pop("token", token)
    chosen = chosen(creator) if callable(chosen) else chosen
    body = os.urandom(64 * 1024)
    before = counted("pass")
    reference, answer, fast, _, _ = both(creator, 8 * MIB, body, chosen, **extra)
    assert reference["status"] == status, reference
    same(reference, answer)
    assert not fast
    assert counted("pass") > before


def test_an_empty_patch_is_django_s_answer(creator, token, media_root):
    reference, answer, fast, _, _ = both(creator, MIB, b"", token)
    assert reference["status"] == 204, reference
    same(reference, answer)
    assert not fast


def test_a_held_lease_is_waited_for_by_django(creator, token, media_root, settings):
    """The layer never waits: a lease held by a live writer goes to the view, which waits
    (TUS_LOCK_WAIT_SECONDS) and answers 409 ``locked`` with Retry-After."""
    settings.TUS_LOCK_WAIT_SECONDS = 0.05
    upload = new_upload(creator, MIB)
    Upload.objects.filter(pk=upload.pk).update(
        lock_token="someone-else", lock_expires_at=timezone.now() + timedelta(seconds=30)
    )
    before = counted("pass")
    answer = patch(UploadPatchFast(StreamingBodyASGIHandler()), upload, b"x" * 1024, token)
    assert answer["status"] == 409
    assert b'"reason":"locked"' in answer["body"]
    assert int(answer["headers"]["retry-after"]) >= 1
    assert counted("pass") > before


def test_an_expired_upload_is_django_s_410(creator, token, media_root):
    upload = new_upload(creator, MIB)
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = patch(UploadPatchFast(StreamingBodyASGIHandler()), upload, b"x" * 1024, token)
    assert answer["status"] == 410
    assert b'"reason":"expired"' in answer["body"]


def test_switched_off_every_patch_goes_to_django(creator, token, media_root, settings):
    settings.TUS_FAST_PATCH = False
    reference, answer, fast, _, second = both(creator, 2 * MIB, os.urandom(MIB), token)
    assert reference["status"] == 204
    same(reference, answer)
    assert not fast
    assert stored(second, media_root) != b""
