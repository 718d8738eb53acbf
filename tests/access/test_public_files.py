"""/public/ served by the app itself when nothing is in front (apps/access/public_files.py):
encrypted media with no token, the headers nginx gives them."""

import pytest
from asgiref.testing import ApplicationCommunicator

from apps.access.public_files import PublicFiles

pytestmark = pytest.mark.django_db

CONTENT = "0f0e0d0c-0b0a-4908-8706-050403020100"
MARK = "ab" * 16
NAME = f"{CONTENT}/{MARK}/hls/chunk-0-00001.m4s"
DATA = bytes(range(256)) * 8


async def _never(scope, receive, send):  # what /public/ must never reach
    raise AssertionError(f"passed on: {scope['path']}")


async def request(path: str, *, method: str = "GET", headers=()) -> tuple[int, dict, bytes]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        "query_string": b"",
    }
    app = ApplicationCommunicator(PublicFiles(_never), scope)
    await app.send_input({"type": "http.request", "body": b""})
    start = await app.receive_output(5)
    body = await app.receive_output(5)
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


@pytest.fixture
def stored(media_root):
    path = media_root / "public" / NAME
    path.parent.mkdir(parents=True)
    path.write_bytes(DATA)
    return path


async def test_a_public_file_is_served_to_anyone_cacheable_for_ever(stored):
    status, headers, body = await request(f"/public/{NAME}")
    assert status == 200
    assert body == DATA
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["content-type"] == "video/iso.segment"


async def test_ranges_heads_preflights_and_refusals(stored):
    status, headers, body = await request(f"/public/{NAME}", headers=[("range", "bytes=10-19")])
    assert (status, body, headers["content-range"]) == (
        206,
        DATA[10:20],
        f"bytes 10-19/{len(DATA)}",
    )
    status, _, body = await request(f"/public/{NAME}", headers=[("range", "bytes=99999-")])
    assert status == 416
    status, headers, body = await request(f"/public/{NAME}", method="HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", str(len(DATA)))
    status, headers, _ = await request(f"/public/{NAME}", method="OPTIONS")
    assert status == 204
    assert "GET" in headers["access-control-allow-methods"]
    assert (await request(f"/public/{NAME}", method="POST"))[0] == 405
    for path in (
        f"/public/{CONTENT}/{MARK}/hls/missing.m4s",
        f"/public/{CONTENT}/{MARK}/../../../secret",
        f"/public/{CONTENT}/{MARK}/other/x.m4s",
        f"/public/{CONTENT}/{MARK}/hls/",
        "/public/",
    ):
        status, headers, body = await request(path)
        assert status == 404, path
        assert b"not_found" in body


def test_without_the_asgi_layer_django_answers_the_same(stored, client):
    response = client.get(f"/public/{NAME}", HTTP_RANGE="bytes=0-9")
    assert response.status_code == 206
    assert (
        b"".join(response.streaming_content if response.streaming else [response.content])
        == DATA[:10]
    )
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert client.get(f"/public/{CONTENT}/{MARK}/hls/missing.m4s").status_code == 404
    assert client.get(f"/public/{CONTENT}/{MARK}/x/../../y").status_code == 404
    assert client.post(f"/public/{NAME}").status_code == 405
    assert client.options(f"/public/{NAME}").status_code == 204
