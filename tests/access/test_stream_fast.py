"""Stream files answered before Django (apps/access/stream_fast.py) are the answers Django's view
gives: every case goes through both, and the two responses are compared header by header.

Each request is sent twice: to Django alone (the ASGI handler the served stack wraps) and to the
fast path in front of it. Where the fast path serves, its metric moves and the responses must be
identical except for Date, Server and a freshly drawn X-Request-ID; where it must not (refused
tokens, missing files, a preflight, an unsatisfiable range, hosts and schemes Django decides),
it passes the request on and Django answers."""

import pytest
from prometheus_client import REGISTRY

from apps.access.stream_fast import StreamFiles
from streamgate.streaming import StreamingBodyASGIHandler
from tests.access.conftest import published
from tests.access.test_playback import SEGMENT, signed
from tests.support.edge_client import asgi_get

pytestmark = pytest.mark.django_db

FILES = {
    "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia_0.m3u8\n",
    "media_0.m3u8": b"#EXTM3U\n#EXT-X-ENDLIST\n",
    "manifest.mpd": b"<MPD/>",
    "init-stream0.m4s": b"\0\0\0\x18ftypcmfc",
    "chunk-stream0-00001.m4s": SEGMENT,
    "storyboard/sprite-001.jpg": b"\xff\xd8jpeg",
    "storyboard.vtt": b"WEBVTT\n",
    "poster.jpg": b"\xff\xd8poster",
}
PER_REQUEST = {"date", "server", "x-request-id"}
# Their answer depends on the content's captions (a database read): Django's view gives it.
CAPTION_AWARE = ("master.m3u8", "manifest.mpd")


@pytest.fixture
def ready(media_root):
    return published(media_root, files=FILES)


@pytest.fixture
def django_app():
    return StreamingBodyASGIHandler()


@pytest.fixture
def fast(django_app):
    return StreamFiles(django_app)


def served() -> float:
    sample = REGISTRY.get_sample_value
    return sample("streamgate_stream_fast_responses_total", {"outcome": "served"}) or 0


def passed() -> float:
    sample = REGISTRY.get_sample_value
    return sample("streamgate_stream_fast_responses_total", {"outcome": "pass"}) or 0


def path_of(ready, name: str, token: str | None = None) -> str:
    return f"/stream/{token or signed(ready.content)}/{ready.content.id}/{name}"


def both(django_app, fast, path: str, method: str = "GET", **headers):
    """(Django's answer, the fast path's answer, whether the fast path served it)."""
    reference = asgi_get(django_app, path, method=method, **headers)
    before = served()
    answer = asgi_get(fast, path, method=method, **headers)
    return reference, answer, served() > before


def assert_same(reference: dict, answer: dict) -> None:
    assert answer["status"] == reference["status"]
    assert answer["body"] == reference["body"]
    theirs = {k: v for k, v in reference["headers"].items() if k not in PER_REQUEST}
    ours = {k: v for k, v in answer["headers"].items() if k not in PER_REQUEST}
    assert ours == theirs
    assert "x-request-id" in answer["headers"]


@pytest.mark.parametrize("name", [name for name in FILES if name not in CAPTION_AWARE])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_every_kind_of_file_is_served_as_django_serves_it(ready, django_app, fast, name, method):
    reference, answer, fast_served = both(
        django_app, fast, path_of(ready, name), method=method, origin="https://player.example"
    )
    assert reference["status"] == 200
    assert fast_served
    assert_same(reference, answer)
    if method == "GET":
        assert answer["body"] == FILES[name]


@pytest.mark.parametrize("name", CAPTION_AWARE)
def test_manifests_and_captions_are_left_to_django(ready, django_app, fast, name):
    reference, answer, fast_served = both(django_app, fast, path_of(ready, name))
    assert reference["status"] == 200
    assert not fast_served
    assert_same(reference, answer)
    assert answer["body"] == FILES[name]  # no captions: the stored manifest as it is
    captions = asgi_get(fast, path_of(ready, f"subs/{'0' * 8}-0000-0000-0000-{'0' * 12}.vtt"))
    assert captions["status"] == 404


@pytest.mark.parametrize("wanted", ["bytes=0-9", "bytes=100-", "bytes=-16", "bytes=10000-20000"])
def test_byte_ranges_are_served_as_django_serves_them(ready, django_app, fast, wanted):
    path = path_of(ready, "chunk-stream0-00001.m4s")
    reference, answer, fast_served = both(django_app, fast, path, range=wanted)
    assert reference["status"] == 206
    assert fast_served
    assert_same(reference, answer)


def test_a_browsers_cookies_change_nothing(ready, django_app, fast):
    """Same-origin players send the site's cookies; a stream answer depends on the token alone
    and says so (no ``Vary: Cookie``), so a CDN keeps one copy for every viewer. (A malformed
    session cookie is the one difference left: Django's session middleware expires it, the fast
    path leaves that to the next page.)"""
    path = path_of(ready, "chunk-stream0-00001.m4s")
    cookie = f"sessionid={'s' * 32}; csrftoken={'c' * 32}"
    reference, answer, fast_served = both(django_app, fast, path, cookie=cookie)
    assert "cookie" not in reference["headers"].get("vary", "").lower()
    assert fast_served
    assert_same(reference, answer)


def production_security(settings):
    """Production's HTTPS settings; Django's middleware reads them when the handler is built."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_PRELOAD = True
    django_app = StreamingBodyASGIHandler()
    return django_app, StreamFiles(django_app)


def test_https_behind_a_proxy_gets_the_same_security_headers(ready, settings):
    django_app, fast = production_security(settings)
    path = path_of(ready, "chunk-stream0-00001.m4s")
    reference, answer, fast_served = both(django_app, fast, path, x_forwarded_proto="https")
    assert reference["status"] == 200
    assert "strict-transport-security" in reference["headers"]
    assert fast_served
    assert_same(reference, answer)


def test_plain_http_that_production_redirects_goes_to_django(ready, settings):
    django_app, fast = production_security(settings)
    reference, answer, fast_served = both(django_app, fast, path_of(ready, "master.m3u8"))
    assert reference["status"] == 301
    assert not fast_served
    assert_same(reference, answer)


def test_a_callers_request_id_is_echoed(ready, fast):
    answer = asgi_get(fast, path_of(ready, "master.m3u8"), x_request_id="player-42-abc")
    assert answer["headers"]["x-request-id"] == "player-42-abc"


def refused_cases(ready) -> dict[str, tuple[str, dict, int]]:
    """(path, headers, Django's status) of requests the fast path must leave to Django."""
    other = published(ready.folder.parents[2], files={"master.m3u8": b"#EXTM3U\n"})
    master = path_of(ready, "master.m3u8")
    upper = master.replace(str(ready.content.id), str(ready.content.id).upper())
    return {
        "expired token": (path_of(ready, "master.m3u8", signed(ready.content, expires=1)), {}, 403),
        "another content's token": (path_of(ready, "master.m3u8", signed(other.content)), {}, 403),
        "garbled token": (path_of(ready, "master.m3u8", "not-a-token"), {}, 403),
        "missing file": (path_of(ready, "media_9.m3u8"), {}, 404),
        "folder": (path_of(ready, "storyboard"), {}, 404),
        "dot segments": (path_of(ready, "storyboard/../master.m3u8"), {}, 404),
        "hidden file": (path_of(ready, ".env"), {}, 404),
        "unsatisfiable range": (path_of(ready, "manifest.mpd"), {"range": "bytes=500-"}, 416),
        "host Django refuses": (master, {"host": "evil.example"}, 400),
        "upper-case id Django's route does not match": (upper, {}, 404),
        "a name ending in a newline": (master + "%0A", {}, 404),
    }


def test_everything_else_is_passed_to_django_and_answered_there(ready, django_app, fast):
    for case, (path, headers, status) in refused_cases(ready).items():
        before = passed()
        reference, answer, fast_served = both(django_app, fast, path, **headers)
        assert not fast_served, case
        assert reference["status"] == status, (case, reference["status"])
        assert_same(reference, answer)
        assert passed() > before, case


def test_a_preflight_and_other_methods_go_to_django(ready, django_app, fast):
    path = path_of(ready, "master.m3u8")
    for method in ("POST", "PUT", "DELETE"):
        reference, answer, fast_served = both(django_app, fast, path, method=method)
        assert not fast_served
        assert_same(reference, answer)
        assert answer["status"] == 403  # CSRF refuses an unsafe method before the view
    before = served()
    preflight = asgi_get(
        fast,
        path,
        method="OPTIONS",
        origin="https://player.example",
        access_control_request_method="GET",
    )
    assert preflight["status"] == 204
    assert preflight["headers"]["access-control-allow-origin"] == "*"
    assert served() == before


def test_nginx_or_s3_delivery_leaves_every_request_to_django(ready, fast, settings):
    settings.STREAM_ACCEL_REDIRECT = "/protected/"
    before = served()
    answer = asgi_get(fast, path_of(ready, "master.m3u8"))
    assert answer["status"] == 200
    assert answer["headers"]["x-accel-redirect"].startswith("/protected/renditions/")
    assert served() == before


def test_a_large_file_is_streamed_by_django(ready, django_app, fast, settings):
    settings.STREAM_MEMORY_LIMIT = 1024
    path = path_of(ready, "chunk-stream0-00001.m4s")
    reference, answer, fast_served = both(django_app, fast, path)
    assert not fast_served
    assert_same(reference, answer)
    assert answer["body"] == SEGMENT


def test_an_html_file_is_left_to_django_for_its_content_security_policy(ready, django_app, fast):
    (ready.folder / "notes.html").write_bytes(b"<p>hello</p>")
    reference, answer, fast_served = both(django_app, fast, path_of(ready, "notes.html"))
    assert reference["status"] == 200
    assert "content-security-policy" in reference["headers"]
    assert not fast_served
    assert_same(reference, answer)


def test_an_unreadable_file_is_a_503_from_either_path(ready, django_app, fast):
    """A disk error, a permission, a link loop: storage that cannot be read is away, not a
    server error."""
    (ready.folder / "loop.m4s").symlink_to("loop.m4s")
    reference, answer, fast_served = both(django_app, fast, path_of(ready, "loop.m4s"))
    assert reference["status"] == 503
    assert reference["headers"]["retry-after"] == "5"
    assert not fast_served
    assert_same(reference, answer)
