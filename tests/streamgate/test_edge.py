"""The edge replays content API reads from Redis, and never one that a write, a revoked token, an
expired token, a deactivated user or another caller should not see.

The application under test is the ASGI stack as uvicorn runs it (edge, Django's handler, every
middleware) on the test PostgreSQL and Redis; requests go through channels' HttpCommunicator.
"""

import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from apps.access.models import ApiToken
from apps.access.services import api_token_create, api_token_revoke, api_token_touch
from apps.content.models import Content, ContentStatus
from apps.content.services import content_progress_set
from streamgate.edge import EDGE_MARKER, SCOPE_FLAG, EdgeCache
from streamgate.streaming import StreamingBodyASGIHandler
from streamgate.versions import AUTH, PAGE_TTL, versions_read
from tests.factories import ContentFactory, CreatorFactory, StaffFactory, UserFactory
from tests.support.edge_client import asgi_get, edge_hits

pytestmark = pytest.mark.django_db(transaction=True)

CATALOG = "/api/v1/contents/?status=ready"


@pytest.fixture(autouse=True)
def _empty_edge():
    cache.delete_pattern("content:api*")  # Django's own pages
    client = redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"])
    for key in client.scan_iter("edge:*"):
        client.delete(key)


@pytest.fixture
def edge(settings):
    settings.EDGE_CACHE = True
    settings.CORS_ALLOWED_ORIGINS = ["https://player.example"]
    return EdgeCache(StreamingBodyASGIHandler())


hits = edge_hits
get = asgi_get


def served_by_edge(app, path: str, token: str | None = None, **headers: str) -> dict:
    before = hits()
    response = get(app, path, token, **headers)
    assert hits() == before + 1, "expected a replay"
    return response


def served_by_django(app, path: str, token: str | None = None, **headers: str) -> dict:
    before = hits()
    response = get(app, path, token, **headers)
    assert hits() == before, "expected Django to answer"
    return response


def test_a_repeated_read_is_replayed_with_the_same_headers_and_its_own_request_id(edge):
    creator = CreatorFactory()
    ContentFactory(owner=creator, title="Film", status=ContentStatus.READY)
    _, token = api_token_create(user=creator)

    first = served_by_django(edge, CATALOG, token, x_request_id="first-request")
    again = served_by_edge(edge, CATALOG, token, x_request_id="second-request")
    assert first["status"] == again["status"] == 200
    assert again["body"] == first["body"]
    assert [r["title"] for r in _json(again)["results"]] == ["Film"]
    assert first["headers"].pop("x-request-id") == "first-request"
    assert again["headers"].pop("x-request-id") == "second-request"
    assert again["headers"] == first["headers"]
    assert EDGE_MARKER.lower() not in first["headers"]
    third = served_by_edge(edge, CATALOG, token, x_request_id="not a sane id!")
    assert len(third["headers"]["x-request-id"]) == 32  # a new one, not the caller's


def test_a_write_shows_at_once(edge):
    creator = CreatorFactory()
    content = ContentFactory(owner=creator, title="Before", status=ContentStatus.READY)
    detail = f"/api/v1/contents/{content.id}/"
    get(edge, detail)
    assert _json(served_by_edge(edge, detail))["title"] == "Before"

    Content.objects.filter(pk=content.pk).update(title="After")
    assert _json(served_by_django(edge, detail))["title"] == "After"
    assert _json(served_by_edge(edge, detail))["title"] == "After"


def test_progress_of_a_draft_empties_only_its_owners_pages(edge):
    owner, other = CreatorFactory(), UserFactory()
    ContentFactory(title="Public", status=ContentStatus.READY)
    draft = ContentFactory(owner=owner, title="Encoding", status=ContentStatus.PROCESSING)
    tokens = {who: api_token_create(user=who)[1] for who in (owner, other, StaffFactory())}
    every = "/api/v1/contents/"
    for token in [None, *tokens.values()]:
        get(edge, every, token)
    for token in [None, tokens[owner], tokens[other]]:
        served_by_edge(edge, every, token)

    content_progress_set(content_id=draft.id, progress=40)  # an encode's tick

    served_by_edge(edge, every)
    served_by_edge(edge, every, tokens[other])
    for who in (owner, *[u for u in tokens if u.is_staff]):
        page = _json(served_by_django(edge, every, tokens[who]))
        assert {c["title"]: c["progress"] for c in page["results"]}["Encoding"] == 40


def test_progress_of_a_published_content_empties_every_page(edge):
    content = ContentFactory(status=ContentStatus.READY)
    get(edge, CATALOG)
    served_by_edge(edge, CATALOG)
    content_progress_set(content_id=content.id, progress=7)
    assert _json(served_by_django(edge, CATALOG))["results"][0]["progress"] == 7


def test_a_revoked_token_is_refused_at_once(edge):
    creator = CreatorFactory()
    record, token = api_token_create(user=creator)
    get(edge, CATALOG, token)
    served_by_edge(edge, CATALOG, token)

    api_token_revoke(token=record)
    assert served_by_django(edge, CATALOG, token)["status"] == 401


def test_a_deactivated_user_is_refused_at_once(edge):
    user = UserFactory()
    _, token = api_token_create(user=user)
    get(edge, CATALOG, token)
    served_by_edge(edge, CATALOG, token)

    user.is_active = False
    user.save()
    assert served_by_django(edge, CATALOG, token)["status"] == 401


def test_an_expired_token_is_refused_even_with_a_page_stored(edge, time_machine):
    _, token = api_token_create(
        user=UserFactory(), expires_at=timezone.now() + timedelta(seconds=2)
    )
    get(edge, CATALOG, token)
    served_by_edge(edge, CATALOG, token)
    time_machine.move_to(timezone.now() + timedelta(seconds=3))
    assert served_by_django(edge, CATALOG, token)["status"] == 401


def test_recording_a_tokens_use_or_a_new_token_keeps_pages(edge):
    user = UserFactory()
    record, token = api_token_create(user=user)
    version = versions_read([AUTH])
    api_token_touch(token=record)
    api_token_create(user=UserFactory())
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    assert versions_read([AUTH]) == version

    ApiToken.objects.filter(pk=record.pk).update(name="renamed")
    assert versions_read([AUTH]) != version  # anything else about a token does move it


def test_callers_never_see_each_others_pages(edge):
    owner = CreatorFactory()
    ContentFactory(owner=owner, title="Draft", status=ContentStatus.DRAFT)
    ContentFactory(owner=owner, title="Public", status=ContentStatus.READY)
    _, owners = api_token_create(user=owner)
    _, others = api_token_create(user=UserFactory())
    every = "/api/v1/contents/"
    for _ in range(2):
        assert sorted(_titles(get(edge, every, owners))) == ["Draft", "Public"]
        assert _titles(get(edge, every, others)) == ["Public"]
        assert _titles(get(edge, every)) == ["Public"]
    assert get(edge, every, "not-a-token")["status"] == 401
    assert get(edge, every, "not-a-token")["status"] == 401


def test_cors_answers_are_kept_per_origin(edge):
    ContentFactory(status=ContentStatus.READY)
    for _ in range(2):
        allowed = get(edge, CATALOG, origin="https://player.example")
        assert allowed["headers"]["access-control-allow-origin"] == "https://player.example"
        other = get(edge, CATALOG, origin="https://elsewhere.example")
        assert "access-control-allow-origin" not in other["headers"]
    served_by_edge(edge, CATALOG, origin="https://player.example")


def test_what_is_not_a_plain_cacheable_read_goes_to_django(edge):
    creator = CreatorFactory()
    _, token = api_token_create(user=creator)
    missing = "/api/v1/contents/00000000-0000-4000-8000-000000000000/"
    for _ in range(2):
        assert served_by_django(edge, missing)["status"] == 404  # only 200s are kept
        served_by_django(edge, CATALOG, token, cookie="sessionid=abc")  # browsers: Django
        served_by_django(edge, "/api/v1/contents/?status=ready", None, authorization="Basic eA==")
        served_by_django(edge, "/healthz")


def test_django_marks_only_what_the_edge_asked_about_and_never_a_session(edge):
    creator = CreatorFactory()
    ContentFactory(owner=creator, status=ContentStatus.READY)
    _, token = api_token_create(user=creator)
    django = StreamingBodyASGIHandler()

    async def asked(scope, receive, send):  # what the edge does on a miss
        await django({**scope, SCOPE_FLAG: True}, receive, send)

    assert EDGE_MARKER.lower() in get(asked, CATALOG)["headers"]
    assert EDGE_MARKER.lower() in get(asked, CATALOG, token)["headers"]
    assert EDGE_MARKER.lower() not in get(django, CATALOG, token)["headers"]  # not asked
    session = Client()
    session.force_login(creator)
    cookie = f"sessionid={session.cookies['sessionid'].value}"
    assert EDGE_MARKER.lower() not in get(asked, CATALOG, cookie=cookie)["headers"]


def test_the_marker_never_reaches_a_client(edge):
    creator = CreatorFactory()
    ContentFactory(owner=creator, status=ContentStatus.READY)
    _, token = api_token_create(user=creator)
    for _ in range(2):
        for response in (
            get(edge, CATALOG),
            get(edge, CATALOG, token),
            get(edge, CATALOG, token, cookie="csrftoken=x"),
            get(edge, CATALOG, token, method="HEAD"),
        ):
            assert response["status"] == 200
            assert EDGE_MARKER.lower() not in response["headers"]


def test_a_demoted_staff_member_stops_seeing_drafts(edge):
    ContentFactory(title="Draft", status=ContentStatus.DRAFT)
    ContentFactory(title="Public", status=ContentStatus.READY)
    staff = StaffFactory()
    _, token = api_token_create(user=staff)
    every = "/api/v1/contents/"
    assert sorted(_titles(get(edge, every, token))) == ["Draft", "Public"]
    staff.is_staff = False
    staff.save()
    assert _titles(get(edge, every, token)) == ["Public"]


def test_a_value_cannot_pass_for_another_parameter(edge):
    owner = CreatorFactory(username="alice")
    ContentFactory(owner=owner, title="Hers", status=ContentStatus.READY)
    assert get(edge, "/api/v1/contents/?owner=alice%26status%3Dready")["status"] == 200
    assert _titles(get(edge, "/api/v1/contents/?owner=alice&status=ready")) == ["Hers"]


def test_a_renamed_owner_shows_at_once(edge):
    owner = CreatorFactory(username="before")
    content = ContentFactory(owner=owner, status=ContentStatus.READY)
    detail = f"/api/v1/contents/{content.id}/"
    assert _json(get(edge, detail))["owner"] == "before"
    owner.username = "after"
    owner.save()
    assert _json(get(edge, detail))["owner"] == "after"


def test_without_redis_the_edge_steps_aside(edge, settings):
    ContentFactory(title="Film", status=ContentStatus.READY)
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }
    broken = EdgeCache(StreamingBodyASGIHandler())
    for _ in range(2):
        response = served_by_django(broken, CATALOG)
        assert response["status"] == 200
        assert _titles(response) == ["Film"]


def test_the_edge_is_off_when_turned_off(settings):
    settings.EDGE_CACHE = False
    app = EdgeCache(StreamingBodyASGIHandler())
    ContentFactory(status=ContentStatus.READY)
    for _ in range(2):
        response = served_by_django(app, CATALOG)
        assert EDGE_MARKER.lower() not in response["headers"]


def test_the_edge_turns_itself_off_without_a_redis_cache(settings, tmp_path):
    settings.EDGE_CACHE = True
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }
    app = EdgeCache(StreamingBodyASGIHandler())
    assert not app.enabled
    ContentFactory(status=ContentStatus.READY)
    for _ in range(2):
        response = served_by_django(app, CATALOG)
        assert response["status"] == 200
        assert EDGE_MARKER.lower() not in response["headers"]


def _json(response: dict):
    import json

    return json.loads(response["body"])


def _titles(response: dict) -> list[str]:
    return [c["title"] for c in _json(response)["results"]]


def test_only_responses_the_key_fully_describes_are_kept():
    from streamgate.edge import _replayable

    assert _replayable([(b"Vary", b"Cookie, Origin"), (b"Content-Type", b"application/json")])
    assert _replayable([(b"vary", b"Accept, Authorization")])
    assert not _replayable([(b"Vary", b"Accept-Encoding")])  # e.g. a compression middleware
    assert not _replayable([(b"Vary", b"*")])
    assert not _replayable([(b"Set-Cookie", b"csrftoken=x; Path=/")])


def test_the_served_application_has_the_edge_in_front_of_django():
    from apps.access.beacon_fast import BeaconFast
    from apps.access.key_decisions import KeyFiles
    from apps.access.public_files import PublicFiles
    from apps.access.stream_fast import StreamFiles
    from apps.access.upload_fast import UploadPatchFast
    from streamgate.asgi import application
    from streamgate.database import DatabaseWaitLimit

    assert isinstance(application, DatabaseWaitLimit)  # outermost: HTTP and websockets
    public = application.app.application_mapping["http"]
    # Public media files, stream files from disk, remembered keys, accepted beacons, bearer tus
    # PATCHes, the edge, then Django.
    assert isinstance(public, PublicFiles)
    http = public.app
    assert isinstance(http, StreamFiles)
    assert isinstance(http.app, KeyFiles)
    assert isinstance(http.app.app, BeaconFast)
    assert isinstance(http.app.app.app, UploadPatchFast)
    assert isinstance(http.app.app.app.app, EdgeCache)
    assert isinstance(http.app.app.app.app.app, StreamingBodyASGIHandler)


def test_staff_pages_are_never_kept(edge):
    """Staff see every unpublished content: no scope could invalidate their pages cheaply."""
    ContentFactory(title="Draft", status=ContentStatus.DRAFT)
    _, token = api_token_create(user=StaffFactory())
    every = "/api/v1/contents/"
    get(edge, every, token)
    assert _titles(served_by_django(edge, every, token)) == ["Draft"]


def test_the_edge_answers_an_if_none_match_with_304(edge):
    ContentFactory(title="Film", status=ContentStatus.READY)
    first = get(edge, CATALOG)
    etag = first["headers"]["etag"]
    again = served_by_edge(edge, CATALOG, if_none_match=etag)
    assert again["status"] == 304
    assert again["body"] == b""
    assert again["headers"]["etag"] == etag
    assert "content-type" not in again["headers"]
    assert served_by_edge(edge, CATALOG, if_none_match='"other"')["status"] == 200
    Content.objects.update(title="Renamed")
    assert served_by_django(edge, CATALOG, if_none_match=etag)["status"] == 200


def test_a_busy_entry_is_replayed_from_memory_and_checked_as_one_from_redis(edge):
    """The process remembers what it stored or replayed; a replay from memory reads no Redis
    but the same versions, so a write still shows at once."""
    content = ContentFactory(title="Before", status=ContentStatus.READY)
    detail = f"/api/v1/contents/{content.id}/"
    served_by_django(edge, detail)
    redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"]).flushdb()
    assert _json(served_by_edge(edge, detail))["title"] == "Before"  # Redis holds nothing now

    Content.objects.filter(pk=content.pk).update(title="After")
    assert _json(served_by_django(edge, detail))["title"] == "After"
    assert _json(served_by_edge(edge, detail))["title"] == "After"


def test_a_remembered_entry_lives_no_longer_than_in_redis(edge, time_machine):
    content = ContentFactory(status=ContentStatus.READY)
    detail = f"/api/v1/contents/{content.id}/"
    served_by_django(edge, detail)
    served_by_edge(edge, detail)
    redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"]).flushdb()
    time_machine.move_to(timezone.now() + timedelta(seconds=PAGE_TTL + 1))
    served_by_django(edge, detail)


def test_memory_keeps_the_most_recently_used_entries_within_its_bytes():
    from streamgate.edge import _Memory

    memory = _Memory(limit=3 * 1300)
    meta = {"at": time.time()}
    for name in ("a", "b", "c"):
        memory.put(name, (meta, [(b"content-type", b"application/json")], b"x" * 1000))
    assert memory.get("a") is not None  # a is now the most recent
    memory.put("d", (meta, [], b"x" * 1000))
    assert memory.get("b") is None  # the least recently used went first
    assert all(memory.get(name) is not None for name in ("a", "c", "d"))
    assert memory.size <= memory.limit
    memory.put("huge", (meta, [], b"x" * 10_000))  # larger than the whole memory: not kept
    assert memory.get("huge") is None
    assert memory.get("a") is not None
    _, headers, _ = memory.get("a")
    headers.append((b"x-request-id", b"1"))  # a replay's own header never sticks to the entry
    assert memory.get("a")[1] == [(b"content-type", b"application/json")]


def test_while_redis_is_away_memory_steps_aside_so_the_breakers_trial_reaches_redis(edge):
    """A replay from memory would use up the breaker's one trial call without asking Redis, and
    the breaker (shared with Django's cache) would stay open after Redis is back."""
    content = ContentFactory(status=ContentStatus.READY)
    detail = f"/api/v1/contents/{content.id}/"
    served_by_django(edge, detail)
    served_by_edge(edge, detail)  # remembered
    breaker = edge._redis.breaker
    breaker.failed(ConnectionError("Redis went away"))
    try:
        breaker._retry_at = 0  # the cooldown is over: the next call is the trial
        served_by_edge(edge, detail)  # the trial read Redis, which answers: the breaker closes
        assert breaker.open_since is None
    finally:
        breaker.answered()
