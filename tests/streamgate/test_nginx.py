"""The shipped nginx configuration (deploy/nginx/), rendered with this test's paths and run by
Debian's nginx in front of a real uvicorn: /public/ from disk and from S3 (the moto server),
/static/, the API and websockets passed on, the client's address forwarded, X-Accel-Redirect."""

import http.client
import json
import os
import shutil
import subprocess
import time

import boto3
import pytest
from django.conf import settings

from tests.factories import ContentFactory
from tests.support.nginx import (
    DEPLOY,
    Nginx,
    config_test,
    nginx_binary,
    nginx_server,
    placeholders,
    prepare,
    render,
)
from tests.support.processes import embedded_env, free_port, start_web, stop

pytestmark = pytest.mark.skipif(
    nginx_binary() is None,
    reason="nginx is not installed and could not be (tests/nginx.sh needs root and apt-get)",
)

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, no-cache"
FOLDER = "/public/0b7e3e3c-6f1e-4c52-9a57-5a1d8c0e2f41/9d6a4c2e-1f0b-4b5e-8f3a-2c7d9e1a0b5c/"
SEGMENT = os.urandom(300_000)
FILES = {
    "init-720p.mp4": (b"\x00\x00\x00\x18ftypiso6" + os.urandom(900), "video/mp4"),
    "seg-720p-00001.m4s": (SEGMENT, "video/iso.segment"),
    "seg-720p-00001.ts": (SEGMENT[:188_000], "video/mp2t"),
    "720p.m3u8": (b"#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n", "application/vnd.apple.mpegurl"),
    "manifest.mpd": (b'<?xml version="1.0"?><MPD type="static"/>', "application/dash+xml"),
    "captions-en.vtt": (b"WEBVTT\n", "text/vtt"),
    "poster.jpg": (b"\xff\xd8\xff\xe0" + os.urandom(500), "image/jpeg"),
}
LIVE = {
    "720p.live.m3u8": (b"#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n", "application/vnd.apple.mpegurl"),
    "manifest.live.mpd": (b'<?xml version="1.0"?><MPD type="dynamic"/>', "application/dash+xml"),
}


def public_read_policy(bucket: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/public/*",
            }
        ],
    }


SECRET = b"not public: outside the public/ folder"


class Site:
    """One nginx (disk or S3 flavour) in front of the module's uvicorn."""

    def __init__(self, server: Nginx, stack: dict, mode: str, s3=None, bucket: str = ""):
        self.base, self.port = server.base_url, server.port
        self.web_log, self.var = stack["web_log"], stack["var"]
        self.mode, self.s3, self.bucket = mode, s3, bucket  # s3, bucket: the S3 site's

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        source: str = "127.0.0.1",
        body: bytes | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request with ``path`` sent exactly as written (no client-side normalising)."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=20, source_address=(source, 0)
        )
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_setup):
    """uvicorn (local settings on the test database, nginx trusted as the proxy, nginx sending
    stream files) and, on disk, the public files, a static file and files nginx must not serve."""
    root = tmp_path_factory.mktemp("nginx")
    var = root / "var"
    public = var / "media" / FOLDER.strip("/")
    public.mkdir(parents=True)
    for name, (data, _type) in {**FILES, **LIVE}.items():
        (public / name).write_bytes(data)
    (public / ".seg-720p-00002.m4s.part").write_bytes(b"half written")
    (var / "media" / "renditions").mkdir()
    (var / "media" / "renditions" / "secret.txt").write_bytes(SECRET)
    (var / "secret.txt").write_bytes(SECRET)
    (var / "static" / "css").mkdir(parents=True)
    (var / "static" / "css" / "probe.css").write_text("body { color: teal; }\n")

    web_port, nginx_port = free_port(), free_port()
    db = settings.DATABASES["default"]
    env = embedded_env(
        var,
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        STREAMGATE_PUBLIC_URL=f"http://127.0.0.1:{nginx_port}",
        TRUSTED_PROXIES="127.0.0.1",
        STREAM_ACCEL_REDIRECT="/_media/",
        SIGNIN_RATE="3/min",
        LOG_LEVEL="INFO",
    )
    web_log = root / "web.log"
    web = start_web(env, web_log, web_port)
    try:
        yield {
            "root": root,
            "var": var,
            "web_port": web_port,
            "nginx_port": nginx_port,
            "web_log": web_log,
        }
    finally:
        stop(web)


@pytest.fixture(scope="module")
def disk_site(stack):
    server = prepare(
        stack["root"] / "nginx-disk",
        port=stack["nginx_port"],
        upstream=f"127.0.0.1:{stack['web_port']}",
        static_root=str(stack["var"] / "static"),
        media_root=str(stack["var"] / "media"),
    )
    with nginx_server(server):
        yield Site(server, stack, "disk")


@pytest.fixture(scope="module")
def s3_site(stack, moto_server):
    """The S3 variant: /public/ relayed from a moto bucket whose objects were stored with a
    wrong type and S3's own headers (nginx must type them by name and drop those)."""
    bucket = f"nginx-{os.getpid()}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read_policy(bucket)))
    for name, (data, _type) in {**FILES, **LIVE}.items():
        s3.put_object(
            Bucket=bucket,
            Key=FOLDER.lstrip("/") + name,
            Body=data,
            ContentType="binary/octet-stream",
            CacheControl="private",
        )
    s3.put_object(Bucket=bucket, Key=FOLDER.lstrip("/") + ".seg-720p-00002.m4s.part", Body=b"x")
    s3.put_object(Bucket=bucket, Key="renditions/secret.txt", Body=SECRET)
    server = prepare(
        stack["root"] / "nginx-s3",
        site="streamgate-s3.conf",
        upstream=f"127.0.0.1:{stack['web_port']}",
        static_root=str(stack["var"] / "static"),
        s3_endpoint=moto_server,
        s3_bucket=bucket,
        cache_dir=str(stack["root"] / "nginx-s3" / "cache"),
        cache_max_size="100m",
    )
    with nginx_server(server):
        yield Site(server, stack, "s3", s3=s3, bucket=bucket)


@pytest.fixture(params=["disk", "s3"])
def public_site(request):
    return request.getfixturevalue(f"{request.param}_site")


def uvicorn_saw(site: Site, text: str) -> bool:
    return text in site.web_log.read_text(errors="replace")


# --- the configuration itself ----------------------------------------------------------------


@pytest.mark.parametrize("site", ["streamgate.conf", "streamgate-s3.conf"])
def test_nginx_t_accepts_each_rendered_variant(tmp_path, site):
    values = {"upstream": "127.0.0.1:9", "static_root": str(tmp_path / "static")}
    values |= (
        {"media_root": str(tmp_path / "media")}
        if site == "streamgate.conf"
        else {
            "s3_endpoint": "https://127.0.0.1:9",
            "s3_bucket": "media",
            "cache_dir": str(tmp_path / "cache"),
            "cache_max_size": "1g",
        }
    )
    checked = config_test(prepare(tmp_path, site=site, **values))
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_a_broken_rendering_fails_nginx_t(tmp_path):
    server = prepare(
        tmp_path, upstream="127.0.0.1:9", static_root="/srv/static", media_root="/srv/media"
    )
    conf = server.prefix / "conf" / "streamgate-app.inc"
    conf.write_text(conf.read_text().replace("proxy_pass http://streamgate_app;", "proxy_pass;"))
    checked = config_test(server)
    assert checked.returncode != 0
    assert "streamgate-app.inc" in checked.stderr


def test_rendering_refuses_a_missing_variable_and_fills_only_ours():
    with pytest.raises(KeyError, match="STREAMGATE_MEDIA_ROOT"):
        render("alias ${STREAMGATE_MEDIA_ROOT}/public/;", {})
    assert render("${STREAMGATE_A} $host ${HOME}", {"STREAMGATE_A": "x"}) == "x $host ${HOME}"


@pytest.mark.skipif(shutil.which("envsubst") is None, reason="envsubst (gettext-base) missing")
def test_render_matches_envsubst_as_the_docs_run_it():
    """The install recipe in streamgate.conf's header (envsubst with our names) gives the same
    files as the tests' rendering, nginx's own $variables untouched."""
    values = {
        "STREAMGATE_NGINX_DIR": "/etc/nginx/streamgate",
        "STREAMGATE_LISTEN": "80",
        "STREAMGATE_SERVER_NAME": "video.example.com",
        "STREAMGATE_UPSTREAM": "127.0.0.1:8000",
        "STREAMGATE_STATIC_ROOT": "/srv/var/static",
        "STREAMGATE_MEDIA_ROOT": "/srv/var/media",
    }
    names = " ".join(f"${{{name}}}" for name in values)
    for name in ("streamgate.conf", "streamgate-app.inc", "streamgate-http.inc"):
        text = (DEPLOY / name).read_text()
        assert placeholders(text) <= set(values)
        result = subprocess.run(
            ["envsubst", names],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **values},
        )
        assert result.stdout == render(text, values)
        assert "$http_upgrade" in result.stdout or name != "streamgate-app.inc"


# --- /public/: nginx alone, from disk and from S3 ----------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_public_files_are_immutable_typed_and_open_to_any_origin(public_site, name):
    data, media_type = FILES[name]
    status, headers, body = public_site.request(
        "GET", FOLDER + name, {"Origin": "https://player.example"}
    )
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == media_type
    assert headers.get_all("Cache-Control") == [IMMUTABLE]
    assert headers.get_all("Access-Control-Allow-Origin") == ["*"]
    assert "Content-Range" in headers["Access-Control-Expose-Headers"]
    assert headers["Access-Control-Allow-Methods"] is None  # preflight answers only
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["x-amz-request-id"] is None
    assert headers["Set-Cookie"] is None
    assert not uvicorn_saw(public_site, FOLDER + name)


def test_a_range_gets_206_with_just_those_bytes(public_site):
    path = FOLDER + "seg-720p-00001.m4s"
    status, headers, body = public_site.request("GET", path, {"Range": "bytes=1000-1999"})
    assert status == 206
    assert body == SEGMENT[1000:2000]
    assert headers["Content-Range"] == f"bytes 1000-1999/{len(SEGMENT)}"
    assert headers["Cache-Control"] == IMMUTABLE
    status, headers, body = public_site.request("GET", path, {"Range": "bytes=-100"})
    assert (status, body) == (206, SEGMENT[-100:])
    status, headers, _ = public_site.request("GET", path, {"Range": f"bytes={len(SEGMENT)}-"})
    assert status == 416


@pytest.mark.parametrize("name", sorted(LIVE))
def test_live_playlists_are_revalidated_not_kept(public_site, name):
    data, media_type = LIVE[name]
    status, headers, body = public_site.request("GET", FOLDER + name)
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == media_type
    assert headers.get_all("Cache-Control") == [REVALIDATE]
    assert headers["ETag"]
    assert headers["Last-Modified"]
    status, again, _ = public_site.request("GET", FOLDER + name, {"If-None-Match": headers["ETag"]})
    assert status == 304
    assert again["Cache-Control"] == REVALIDATE
    assert again["Access-Control-Allow-Origin"] == "*"


def test_a_live_playlist_that_grows_is_seen_at_once(public_site):
    """The next reload sees the segment the encoder just added (no cached copy in nginx)."""
    name = "720p.live.m3u8"
    grown = LIVE[name][0] + b"#EXTINF:4.0,\nseg-720p-00001.m4s\n"
    public_site.request("GET", FOLDER + name)
    if public_site.mode == "disk":
        (public_site.var / "media" / FOLDER.strip("/") / name).write_bytes(grown)
    else:
        public_site.s3.put_object(
            Bucket=public_site.bucket, Key=FOLDER.lstrip("/") + name, Body=grown
        )
    try:
        status, _, body = public_site.request("GET", FOLDER + name)
        assert (status, body) == (200, grown)
    finally:
        if public_site.mode == "disk":
            (public_site.var / "media" / FOLDER.strip("/") / name).write_bytes(LIVE[name][0])
        else:
            public_site.s3.put_object(
                Bucket=public_site.bucket, Key=FOLDER.lstrip("/") + name, Body=LIVE[name][0]
            )


def test_s3_immutable_files_are_served_from_nginx_cache(s3_site):
    path = FOLDER + "poster.jpg"
    s3_site.request("GET", path)
    status, headers, body = s3_site.request("GET", path)
    assert (status, body) == (200, FILES["poster.jpg"][0])
    assert headers["X-Cache-Status"] == "HIT"
    _, live, _ = s3_site.request("GET", FOLDER + "720p.live.m3u8")
    assert live["X-Cache-Status"] == "BYPASS"


def test_a_missing_file_is_404_not_stored_and_not_passed_on(public_site):
    status, headers, body = public_site.request("GET", FOLDER + "seg-720p-09999.m4s")
    assert status == 404
    assert headers["Cache-Control"] == "no-store"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert b"NoSuchKey" not in body
    assert b"AccessDenied" not in body
    assert not uvicorn_saw(public_site, FOLDER)


def test_a_file_being_written_under_a_dot_name_is_never_served(public_site):
    status, _, body = public_site.request("GET", FOLDER + ".seg-720p-00002.m4s.part")
    assert status == 404
    assert body not in (b"half written", b"x")


def test_the_cors_preflight_is_answered_by_nginx(public_site):
    status, headers, body = public_site.request(
        "OPTIONS",
        FOLDER + "seg-720p-00001.m4s",
        {
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "Range" in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Max-Age"] == "86400"


@pytest.mark.parametrize(
    "path",
    [
        "/public/../secret.txt",
        "/public/../../secret.txt",
        "/public/../renditions/secret.txt",
        "/public/%2e%2e/renditions/secret.txt",
        "/public/..%2frenditions%2fsecret.txt",
        "/public/x/../../renditions/secret.txt",
        "/public../renditions/secret.txt",
        "/public/%2e%2e%2f%2e%2e%2fsecret.txt",
    ],
)
def test_dot_segments_never_reach_outside_public(public_site, path):
    status, _, body = public_site.request("GET", path)
    assert status in (400, 403, 404), (status, body[:200])
    assert SECRET not in body


def test_no_directory_listing(disk_site):
    for path in ("/public/", FOLDER, FOLDER.rstrip("/")):
        status, _, body = disk_site.request("GET", path)
        assert status in (301, 403, 404), (path, status)
        assert b"seg-720p" not in body
        assert b"Index of" not in body


def test_only_reads_are_served(public_site):
    status, _, _ = public_site.request("POST", FOLDER + "720p.m3u8", body=b"x")
    assert status in (403, 405)
    status, _, _ = public_site.request("DELETE", FOLDER + "720p.m3u8")
    assert status in (403, 405)
    assert public_site.request("GET", FOLDER + "720p.m3u8")[0] == 200


# --- everything else: /static/, uvicorn behind nginx ------------------------------------------


def test_static_files_come_from_the_collected_folder(disk_site):
    status, headers, body = disk_site.request("GET", "/static/css/probe.css")
    assert (status, body) == (200, b"body { color: teal; }\n")
    assert headers["Content-Type"] == "text/css"
    assert headers["Cache-Control"] == "public, max-age=60"
    assert not uvicorn_saw(disk_site, "probe.css")


def test_the_api_reaches_uvicorn(disk_site):
    status, _, body = disk_site.request("GET", "/healthz")
    assert status == 200, body
    status, headers, _ = disk_site.request("GET", "/api/v1/nothing-here/")
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert uvicorn_saw(disk_site, "/api/v1/nothing-here/")


@pytest.mark.django_db(transaction=True)
def test_the_client_behind_nginx_is_counted_by_its_own_address(disk_site):
    """SIGNIN_RATE=3/min per client address: through nginx, each loopback source address is
    its own client, and a forged X-Forwarded-For moves nobody to another count."""
    nonce = "/api/v1/auth/siwe/nonce/"

    def post(source: str, forged: str | None = None) -> int:
        headers = {"X-Forwarded-For": forged} if forged else {}
        return disk_site.request("POST", nonce, headers, source=source, body=b"")[0]

    assert [post("127.0.0.3", forged=f"203.0.113.{n}") for n in range(4)] == [201] * 3 + [429]
    assert post("127.0.0.4") == 201
    assert post("127.0.0.3") == 429


def test_the_internal_media_location_is_not_reachable_from_outside(disk_site):
    status, _, body = disk_site.request("GET", "/_media/renditions/secret.txt")
    assert status == 404
    assert SECRET not in body


@pytest.mark.django_db(transaction=True)
def test_stream_files_are_sent_by_nginx_after_django_checks_the_token(disk_site):
    """STREAM_ACCEL_REDIRECT=/_media/: Django answers with X-Accel-Redirect only (no body);
    the bytes the player gets are nginx's, from the internal location."""
    from apps.content.models import ContentStatus
    from apps.transcode.models import JobState, TranscodeJob

    content = ContentFactory(status=ContentStatus.READY, duration=8)
    job = TranscodeJob.objects.create(
        content=content,
        attempt=1,
        state=JobState.SUCCEEDED,
        output_prefix=f"renditions/{content.id}/",
    )
    job.output_prefix = f"renditions/{content.id}/{job.id}/"
    job.save(update_fields=["output_prefix"])
    content.published_job = job
    content.save(update_fields=["published_job"])
    folder = disk_site.var / "media" / job.output_prefix
    folder.mkdir(parents=True)
    master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p.m3u8\n"
    (folder / "master.m3u8").write_bytes(master)
    (folder / "seg-720p-00001.m4s").write_bytes(SEGMENT)

    status, _, body = disk_site.request("POST", f"/api/v1/contents/{content.id}/playback/")
    assert status == 200, body
    hls = json.loads(body)["hls_url"]
    path = "/" + hls.split("/", 3)[3]
    status, headers, body = disk_site.request("GET", path)
    assert (status, body) == (200, master)
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert headers["X-Accel-Redirect"] is None
    segment = path.rsplit("/", 1)[0] + "/seg-720p-00001.m4s"
    status, headers, body = disk_site.request("GET", segment, {"Range": "bytes=10-19"})
    assert (status, body) == (206, SEGMENT[10:20])
    token = path.split("/")[2]
    bad = path.replace(token, token + "x")
    assert disk_site.request("GET", bad)[0] == 403


def test_websockets_are_upgraded_through_to_channels(disk_site):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = disk_site.base.replace("http", "ws") + "/ws/no-such-path/"
    with connect(url, origin=disk_site.base, open_timeout=10) as websocket:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=10)
    assert closed.value.rcvd.code == 4404  # Channels' UnknownPathConsumer answered
    assert time.monotonic() - started < 10


def test_tus_uploads_have_no_body_limit_and_the_rest_does(disk_site):
    """A 30 MB body: nginx refuses it (413) for the JSON API, passes it on for tus (the
    application answers, here 401: nobody signed in)."""
    big = b"\0" * (30 * 1024 * 1024)
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": str(len(big))}
    status, _, _ = disk_site.request("POST", "/api/v1/contents/", body=big)
    assert status == 413
    status, _, body = disk_site.request(
        "POST",
        "/api/v1/uploads/",
        {**headers, "Content-Type": "application/offset+octet-stream"},
        body=big,
    )
    assert status == 401, body
