"""A dependency that is away is a quick 503 with Retry-After, never a 500, and everything comes
back by itself. A real uvicorn process talks to PostgreSQL and to a throwaway Redis through
FaultProxy (tests/support/faults.py): ``down()`` resets every connection and refuses new ones
(the service died), ``pause()`` black-holes them (it hangs, or a partition)."""

import http.client
import json
import time
import uuid
from dataclasses import dataclass, field

import pytest
from django.conf import settings as django_settings
from django.test import Client as DjangoClient

from apps.access.services import api_token_create
from apps.content.models import ContentStatus
from apps.transcode.models import JobState, TranscodeJob
from tests.factories import ContentFactory, CreatorFactory
from tests.support.faults import fault_proxy
from tests.support.processes import embedded_env, redis_server, web_server

pytestmark = pytest.mark.django_db(transaction=True)

# A request that meets an absent dependency answers within this many seconds. Measured here:
# 2.0-2.1 s (DATABASE_WAIT_SECONDS, 2 s, for PostgreSQL; one 2 s socket timeout for Redis,
# then its breaker answers at once); the margin is for a machine busy with other tests.
BOUND = 3.0
READYZ_BOUND = 2.0  # compose's health check gives it 5 s
RECOVERY_BOUND = 10.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


@dataclass
class Stack:
    base: str
    database: object
    redis: object
    log: object
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.port = int(self.base.rsplit(":", 1)[-1])

    def call(self, method: str, path: str, headers=None, body: bytes = b"") -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        started = time.monotonic()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            found = Answer(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
                0.0,
            )
        finally:
            connection.close()
        found.seconds = time.monotonic() - started
        return found


@pytest.fixture
def stack(tmp_path, logs_dir):
    db = django_settings.DATABASES["default"]
    with (
        redis_server(logs_dir / "redis.log") as redis_port,
        fault_proxy(int(db["PORT"] or 5432)) as database,
        fault_proxy(redis_port) as redis,
    ):
        env = embedded_env(
            tmp_path / "var",
            DJANGO_SETTINGS_MODULE="streamgate.settings.test",
            DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{database.port}/{db['NAME']}",
            REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
        )
        with web_server(env, logs_dir / "web.log") as base:
            yield Stack(base, database, redis, logs_dir / "web.log")


@dataclass
class World:
    """A creator (bearer token and browser session), a draft, a ready content, an upload."""

    bearer: dict[str, str]
    session: dict[str, str]
    draft: str
    ready: str
    upload: str = ""

    @property
    def tus(self) -> dict[str, str]:
        return {**self.bearer, "Tus-Resumable": "1.0.0"}


@pytest.fixture
def world(stack) -> World:
    creator = CreatorFactory()
    _, token = api_token_create(user=creator)
    browser = DjangoClient()
    browser.force_login(creator)
    ready = ContentFactory(status=ContentStatus.READY)
    job = TranscodeJob.objects.create(
        content=ready, attempt=1, state=JobState.SUCCEEDED, output_prefix=f"renditions/{ready.id}/"
    )
    ready.published_job = job
    ready.save(update_fields=["published_job"])
    found = World(
        bearer={"Authorization": f"Bearer {token}"},
        session={"Cookie": f"sessionid={browser.cookies['sessionid'].value}"},
        draft=str(ContentFactory(owner=creator).id),
        ready=str(ready.id),
    )
    created = stack.call("POST", "/api/v1/uploads/", {**found.tus, "Upload-Length": "100"})
    assert created.status == 201, created.body
    found.upload = "/api/v1/uploads/" + created.headers["location"].rsplit("/", 1)[-1]
    return found


def patch_upload(world: World, offset: int) -> tuple:
    headers = {
        **world.tus,
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    return ("PATCH", world.upload, headers, b"12345")


def database_requests(world: World) -> dict[str, tuple]:
    """Requests that need PostgreSQL: (method, path, headers, body)."""
    edit = {**world.bearer, "Content-Type": "application/json"}
    return {
        "catalog page": ("GET", "/", {}, b""),
        "watch page": ("GET", f"/watch/{world.ready}/", {}, b""),
        "studio page (session)": ("GET", "/studio/", world.session, b""),
        # A query string of its own each time: never an entry the edge could replay.
        "content detail": (
            "GET",
            f"/api/v1/contents/{world.draft}/?q={uuid.uuid4().hex}",
            world.bearer,
            b"",
        ),
        "content edit": ("PATCH", f"/api/v1/contents/{world.draft}/", edit, b'{"title": "New"}'),
        "upload creation": ("POST", "/api/v1/uploads/", {**world.tus, "Upload-Length": "10"}, b""),
        "upload offset": ("HEAD", world.upload, world.tus, b""),
        "upload append": patch_upload(world, 0),
        "sign-in nonce": ("POST", "/api/v1/auth/siwe/nonce/", {}, b""),
        "playback": ("POST", f"/api/v1/contents/{world.ready}/playback/", {}, b""),
    }


SUCCESS = {"GET": 200, "HEAD": 200, "PATCH": 200, "POST": 201}
EXPECTED = {"upload append": 204, "playback": 200}


def expected_status(name: str, method: str) -> int:
    return EXPECTED.get(name, SUCCESS[method])


def assert_unavailable(answer: Answer, *, path: str, dependency: str, retry_after: str) -> None:
    assert answer.status == 503, (path, answer.status, answer.body[:300])
    assert answer.headers["retry-after"] == retry_after
    assert answer.seconds <= BOUND, (path, answer.seconds)
    if path.startswith("/api/"):
        if answer.body:  # HEAD has none
            body = answer.json()
            assert body["reason"] == "unavailable"
            assert body["dependency"] == dependency
            assert "try again" in body["detail"]
    else:
        assert answer.headers["content-type"].startswith("text/html")
        assert b"Back in a moment" in answer.body
        assert f'content="{retry_after}"'.encode() in answer.body  # the page retries by itself


def assert_recovers(stack: Stack, requests: dict[str, tuple]) -> float:
    """Every request succeeds again, without restarting anything; how long that took."""
    started = time.monotonic()
    pending = dict(requests)
    while pending:
        for name, (method, path, headers, body) in list(pending.items()):
            answer = stack.call(method, path, headers, body)
            if answer.status == expected_status(name, method):
                del pending[name]
            else:  # on the way back: an answer, or the documented 503, never a server error
                server_error = answer.status >= 500 and answer.status != 503
                assert not server_error, (name, answer)
        assert time.monotonic() - started < RECOVERY_BOUND, f"still failing: {sorted(pending)}"
        if pending:
            time.sleep(0.2)
    return time.monotonic() - started


def no_server_errors(stack: Stack) -> None:
    log = stack.log.read_text()
    assert '" 500' not in log, "a request was answered 500"
    assert "Internal Server Error" not in log


@pytest.mark.parametrize("fault", ["down", "pause"])
def test_postgresql_away_is_a_quick_503_and_comes_back(stack, world, fault):
    requests = database_requests(world)
    for name, (method, path, headers, body) in requests.items():
        if name != "upload append":  # sent once the database is away, then once it is back
            answer = stack.call(method, path, headers, body)
            assert answer.status == expected_status(name, method), (name, answer)

    getattr(stack.database, fault)()
    try:
        for method, path, headers, body in requests.values():
            answer = stack.call(method, path, headers, body)
            assert_unavailable(answer, path=path, dependency="database", retry_after="5")
        ready = stack.call("GET", "/readyz")
        assert ready.status == 503
        assert ready.seconds < READYZ_BOUND, ready.seconds
        assert "database" in ready.json()["failing"]
    finally:
        stack.database.up()

    assert assert_recovers(stack, requests) < RECOVERY_BOUND
    assert stack.call("GET", "/readyz").status == 200
    no_server_errors(stack)


@pytest.mark.parametrize("fault", ["down", "pause"])
def test_redis_away_degrades_or_503s_quickly_and_comes_back(stack, world, fault):
    """The cache, rate limits, progress messages and the edge go without Redis; the one door
    that fails closed, wallet sign-in, answers 503 (streamgate/throttling.py)."""
    edit = {**world.bearer, "Content-Type": "application/json"}
    detail = ("GET", f"/api/v1/contents/{world.draft}/", world.bearer, b"")
    served = {  # name: (method, path, headers, body, status)
        "catalog page": ("GET", "/", {}, b"", 200),
        "metrics (queue depths left out)": ("GET", "/metrics", {}, b"", 200),
        "content list": ("GET", "/api/v1/contents/", {}, b"", 200),
        "content detail (bearer)": (*detail, 200),
        "content edit": (
            "PATCH",
            f"/api/v1/contents/{world.draft}/",
            edit,
            b'{"title": "Edited while Redis is away"}',
            200,
        ),
        "upload creation (its rate limit fails open)": (
            "POST",
            "/api/v1/uploads/",
            {**world.tus, "Upload-Length": "10"},
            b"",
            201,
        ),
        "upload offset": ("HEAD", world.upload, world.tus, b"", 200),
        "upload append": (*patch_upload(world, 0), 204),
        "playback (its rate limit fails open)": (
            "POST",
            f"/api/v1/contents/{world.ready}/playback/",
            {},
            b"",
            200,
        ),
    }
    nonce = ("POST", "/api/v1/auth/siwe/nonce/", {}, b"")
    assert stack.call(*nonce).status == 201
    assert stack.call("GET", "/readyz").status == 200
    for _ in range(2):  # cached by the page cache and the edge
        assert stack.call(*detail).json()["title"] != "Edited while Redis is away"

    getattr(stack.redis, fault)()
    try:
        for name, (method, path, headers, body, status) in served.items():
            answer = stack.call(method, path, headers, body)
            assert answer.status == status, (name, answer.status, answer.body[:300])
            assert answer.seconds <= BOUND, (name, answer.seconds)
        assert_unavailable(stack.call(*nonce), path=nonce[1], dependency="cache", retry_after="5")
        ready = stack.call("GET", "/readyz")
        assert ready.status == 503
        assert ready.seconds < READYZ_BOUND, ready.seconds
        assert ready.json()["failing"] == ["cache", "broker"]
    finally:
        stack.redis.up()

    assert assert_recovers(stack, {"sign-in nonce": nonce}) < RECOVERY_BOUND
    deadline = time.monotonic() + RECOVERY_BOUND
    while (ready := stack.call("GET", "/readyz")).status != 200:
        assert time.monotonic() < deadline, ready.body
        time.sleep(0.2)
    # The edit made while Redis was away shows at once: its cache bump is made once Redis is
    # back, and nothing cached before it is replayed meanwhile.
    assert stack.call(*detail).json()["title"] == "Edited while Redis is away"
    no_server_errors(stack)


def websocket_opening(stack: Stack, world: World) -> tuple[int | None, dict | None, float]:
    """Open the draft's progress websocket: (close code, first message, seconds)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    started = time.monotonic()
    with connect(
        f"ws://127.0.0.1:{stack.port}/ws/contents/{world.draft}/",
        additional_headers=world.bearer,
        open_timeout=30,
    ) as socket:
        try:
            first = json.loads(socket.recv(timeout=30))
        except ConnectionClosed as closed:
            return closed.rcvd.code, None, time.monotonic() - started
        return None, first, time.monotonic() - started


@pytest.mark.parametrize("service", ["database", "redis"])
def test_progress_websocket_closes_try_again_later_and_reconnects(stack, world, service):
    """A handshake that meets PostgreSQL or Redis paused closes with 1013 (Try Again Later),
    which browsers see (not a 500 they cannot read); once it is back the socket opens and
    sends the current status first."""
    code, first, _ = websocket_opening(stack, world)
    assert code is None
    assert first.items() >= {"type": "status", "status": "draft", "error": None}.items()
    proxy = stack.database if service == "database" else stack.redis
    proxy.pause()
    try:
        code, first, seconds = websocket_opening(stack, world)
        assert code == 1013, first
        assert seconds <= BOUND, seconds
    finally:
        proxy.up()
    deadline = time.monotonic() + RECOVERY_BOUND
    while (found := websocket_opening(stack, world))[0] is not None:
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    assert found[1].items() >= {"type": "status", "status": "draft", "error": None}.items()
    no_server_errors(stack)
