"""The player conformance matrix: StreamGate's real output, from a real server, played to the end
by the players our viewers' sites use, each on a page of another origin.

Players: hls.js 1.7.4 (the one /watch/ ships), dash.js 5.2.1, Shaka Player 5.2.12 (its DASH and
its HLS) and Chromium's native HLS; all from npm (package.json), served to the page from
node_modules, never from a CDN. Clips, made by FFmpeg and encoded by `manage.py ingest` in the
embedded stack (uvicorn, SQLite, the disk) with a two-rung ladder: a length that is a multiple
of the 4 s segment, an odd length, a portrait phone video (landscape frames with a rotation
flag), an HEVC 10-bit source, a variable frame rate source, one without audio, and one long
enough to be encoded in chunks (apps/transcode/chunks.py: three video chunks and the audio, each
encoded on its own, their segments listed in one timeline; every player must play across each
join), that long one with encrypted delivery (MEDIA_ENCRYPTION: each player fetches public
encrypted segments and its key from the gated key URL; native HLS gets the MPEG-TS set), and
the 8 s one encrypted afterwards by `manage.py encrypt_contents`, every key then rewrapped
under a new master key (`media_keys_rewrap`) that the server alone holds.
Each clip has English captions, added after its encode (the manifests then carry a
subtitle rendition and a text adaptation set).

Each case loads the stream with a playback grant from the API, starts playing, asks the player
for the other rendition and waits for the picture to become it, then plays at 4x to `ended`.
The cases run once per module, several pages at a time (tests/web/player_page/harness.js); the
tests below read their reports, one test per player, clip and property.
"""

import base64
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.media import make_rotated, make_video
from tests.support.processes import embedded_env, free_port, manage, web_server

# Player -> which manifest it plays.
PLAYERS = {
    "hlsjs": "hls",
    "dashjs": "dash",
    "shaka-dash": "dash",
    "shaka-hls": "hls",
    "native": "hls",
}
NATIVE_HLS = "application/vnd.apple.mpegurl"
PARALLEL_PAGES = 6
CASE_DEADLINE = 60  # seconds for one case, loading included


def _multiple(path: Path) -> Path:  # 8 s: two whole 4 s segments
    return make_video(path, seconds=8, size="640x360")


def _odd(path: Path) -> Path:
    return make_video(path, seconds=7.3, size="640x360")


def _portrait(path: Path) -> Path:  # as phones record: landscape frames, "rotate 90" flag
    landscape = make_video(path.with_suffix(".landscape.mp4"), seconds=6, size="640x360")
    return make_rotated(path, landscape, 90)


def _hevc_10bit(path: Path) -> Path:
    return make_video(
        path,
        seconds=6,
        size="640x360",
        pix_fmt="yuv420p10le",
        extra=["-c:v", "libx265", "-x265-params", "log-level=error", "-tag:v", "hvc1"],
    )


def _variable_rate(path: Path) -> Path:  # 60 fps for 2 s, then 20 fps
    return make_video(
        path,
        seconds=6,
        size="640x360",
        rate=60,
        video_filter=r"select='lt(t\,2)+not(mod(n\,3))'",
        extra=["-fps_mode", "vfr"],
    )


def _no_audio(path: Path) -> Path:
    return make_video(path, seconds=6, size="640x360", audio=False)


# Sources longer than this are encoded in chunks of CHUNK_SECONDS (one 4 s segment each): only
# the clip below is, in the ingest's process, as a production setting would have it.
CHUNK_THRESHOLD_SECONDS = 10
CHUNK_SECONDS = 4


def _chunked(path: Path) -> Path:  # chunks of 4, 4 and 5.3 s (a remainder under 4 s joins)
    return make_video(path, seconds=13.3, size="640x360")


CLIPS = {
    "multiple-of-segment": (_multiple, 8),
    "odd-length": (_odd, 7.3),
    "portrait-rotated": (_portrait, 6),
    "hevc-10bit": (_hevc_10bit, 6),
    "vfr": (_variable_rate, 6),
    "no-audio": (_no_audio, 6),
    "chunked": (_chunked, 13.3),
}
# The long clip is also the encrypted one (the default, MEDIA_ENCRYPTION): public AES-128 fMP4
# (script players), AES-128 MPEG-TS (native HLS) and CENC (DASH) segments, keys behind the gate;
# the others are published in the clear, behind the token path.
ENCRYPTED = "chunked"
# This one is published in the clear and then encrypted by `manage.py encrypt_contents` (as an
# existing content is); then `media_keys_rewrap` moves every content key to a new master key,
# and the server is given the new master key alone: both encrypted clips play only if the
# command's output is playable and the rewrap kept every key.
COMMAND_ENCRYPTED = "multiple-of-segment"
MASTER_KEYS = {
    "m1": base64.b64encode(b"\x01" * 32).decode(),
    "m2": base64.b64encode(b"\x02" * 32).decode(),
}

# Each clip gets captions after its encode (as a creator adds them): players must list them and
# still play to the end with a subtitle rendition or text adaptation set in the manifests.
CAPTIONS = "1\n00:00:01,000 --> 00:00:02,000\nHello\n"
CAPTION_TRACK = {"language": "en", "label": "English"}

INGEST_ALL = """
import io, json, os, re
from django.core.management import call_command
from django.test import override_settings
from apps.content.models import Content
from apps.content.services import caption_create
from apps.transcode.models import TranscodeChunk
urls, chunks, ids = {}, {}, {}
for name, path in json.loads(os.environ["PLAYER_CLIPS"]).items():
    out = io.StringIO()
    with override_settings(MEDIA_ENCRYPTION=name == "chunked"):
        call_command("ingest", path, title=name, owner="maker", stdout=out)
    urls[name] = out.getvalue()
    content_id = re.search(r"/([0-9a-f-]{36})/master[.]m3u8", urls[name]).group(1)
    ids[name] = content_id
    content = Content.objects.get(pk=content_id)
    caption_create(content=content, data=os.environ["PLAYER_CAPTIONS"].encode(), language="en")
    chunks[name] = sorted(
        f"{kind}-{index}"
        for kind, index in TranscodeChunk.objects.filter(
            job=content.published_job
        ).values_list("kind", "index")
    )
call_command("encrypt_contents", ids[os.environ["PLAYER_COMMAND_ENCRYPTED"]], stdout=io.StringIO())
with override_settings(MEDIA_MASTER_KEYS=json.loads(os.environ["PLAYER_MASTER_KEYS"]),
                       MEDIA_MASTER_KEY_ID="m2"):
    call_command("media_keys_rewrap", stdout=io.StringIO())
print("INGESTED " + json.dumps({"urls": urls, "chunks": chunks}))
"""


@dataclass
class Stack:
    base: str
    contents: dict[str, str]  # clip -> content id
    chunks: dict[str, list[str]]  # clip -> its encode's chunks ("video-0", ...), [] for one run

    def grant(self, clip: str) -> dict:
        """A viewer's playback grant, from the API (the contents are open to anyone)."""
        request = urllib.request.Request(
            f"{self.base}/api/v1/contents/{self.contents[clip]}/playback/", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The embedded stack with every clip encoded by `manage.py ingest`, served by uvicorn."""
    folder = tmp_path_factory.mktemp("players")
    port = free_port()
    env = embedded_env(
        folder / "var",
        DJANGO_SETTINGS_MODULE="tests.support.player_settings",
        DJANGO_DEBUG="0",
        TRANSCODE_PRESET="ultrafast",
        TRANSCODE_CHUNK_THRESHOLD_SECONDS=str(CHUNK_THRESHOLD_SECONDS),
        TRANSCODE_CHUNK_SECONDS=str(CHUNK_SECONDS),
        LOG_LEVEL="WARNING",
        STREAMGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    manage(env, "migrate", "--noinput")
    old_master = {"m1": MASTER_KEYS["m1"]}
    env.update(MEDIA_MASTER_KEYS=json.dumps(old_master), MEDIA_MASTER_KEY_ID="m1")
    manage(env, "create_api_token", "maker", "--creator")
    sources = {name: str(make(folder / f"{name}.mp4")) for name, (make, _) in CLIPS.items()}
    # One process ingests them all: Django starts once, each encode is the command's own.
    clips_env = {
        **env,
        "PLAYER_CLIPS": json.dumps(sources),
        "PLAYER_CAPTIONS": CAPTIONS,
        "PLAYER_COMMAND_ENCRYPTED": COMMAND_ENCRYPTED,
        "PLAYER_MASTER_KEYS": json.dumps(MASTER_KEYS),
    }
    output = manage(clips_env, "shell", "-c", INGEST_ALL, timeout=600)
    printed = json.loads(output.split("INGESTED ", 1)[1])
    contents = {
        name: re.search(r"/stream/[^/]+/([0-9a-f-]{36})/master\.m3u8", text).group(1)
        for name, text in printed["urls"].items()
    }
    logs = folder / "logs"
    logs.mkdir()
    env.update(MEDIA_MASTER_KEYS=json.dumps({"m2": MASTER_KEYS["m2"]}), MEDIA_MASTER_KEY_ID="m2")
    with web_server(env, logs / "web.log", port) as base:
        yield Stack(base=base, contents=contents, chunks=printed["chunks"])


@dataclass
class Case:
    player: str
    clip: str
    url: str
    context: object = None
    page: object = None
    started: float = 0.0
    console: list[str] = field(default_factory=list)
    report: dict | None = None


def _start(browser, site: str, case: Case) -> None:
    case.context = browser.new_context()
    case.page = case.context.new_page()
    case.page.on("console", lambda m: case.console.append(m.text) if m.type == "error" else None)
    case.page.on("pageerror", lambda error: case.console.append(f"page error: {error}"))
    case.page.goto(f"{site}/index.html")
    seconds = CLIPS[case.clip][1]
    end_timeout = int((seconds / 4 + 20) * 1000)
    case.page.evaluate(
        "([player, url, ms]) => { window.harnessRun(player, url, ms); }",
        [case.player, case.url, end_timeout],
    )
    case.started = time.monotonic()


def _finished(case: Case) -> bool:
    report = case.page.evaluate("() => window.report")
    if report["done"] or time.monotonic() - case.started > CASE_DEADLINE:
        if not report["done"]:
            report["errors"].append(f"no result after {CASE_DEADLINE} s (stage {report['stage']})")
        report["console"] = case.console[:8]
        case.report = report
        case.context.close()
        return True
    return False


@pytest.fixture(scope="module")
def matrix(browser, stack, player_site):
    """Every player on every clip, PARALLEL_PAGES at a time; (player, clip) -> the report."""
    probe = browser.new_page()
    native = probe.evaluate(f"() => document.createElement('video').canPlayType('{NATIVE_HLS}')")
    version = browser.version
    probe.close()
    grants = {clip: stack.grant(clip) for clip in CLIPS}
    waiting = [
        Case(player, clip, grants[clip][f"{kind}_url"])
        for player, kind in PLAYERS.items()
        for clip in CLIPS
        if player != "native" or native
    ]
    running: list[Case] = []
    reports = {}
    while waiting or running:
        while waiting and len(running) < PARALLEL_PAGES:
            case = waiting.pop(0)
            _start(browser, player_site, case)
            running.append(case)
        time.sleep(0.2)
        for case in [c for c in running if _finished(c)]:
            running.remove(case)
            reports[case.player, case.clip] = case.report
    reports["native-support"] = (native, version)
    return reports


def _report(matrix, player: str, clip: str) -> dict:
    if player == "native" and not matrix["native-support"][0]:
        pytest.skip(
            f"Chromium {matrix['native-support'][1]} has no native HLS: "
            f"canPlayType('{NATIVE_HLS}') answers ''"
        )
    return matrix[player, clip]


def _describe(report: dict) -> str:
    keys = ("stage", "errors", "warnings", "where", "stalledAt", "waits", "timeline", "console")
    return json.dumps({key: report.get(key) for key in keys}, indent=1)[:3000]


def test_only_the_long_clip_is_encoded_in_chunks(stack):
    """The long clip's manifests join chunks encoded apart (three of video, and the audio
    whole); every other clip is one run's."""
    chunked = {clip: chunks for clip, chunks in stack.chunks.items() if chunks}
    assert chunked == {"chunked": ["audio-0", "video-0", "video-1", "video-2"]}


def test_two_clips_are_encrypted_one_of_them_by_the_command(stack):
    """Their grants carry a key token (the token path's clear media are gone); the server that
    plays them holds only the master key `media_keys_rewrap` moved their keys to."""
    encrypted = {clip for clip in CLIPS if "?k=" in stack.grant(clip)["hls_url"]}
    assert encrypted == {ENCRYPTED, COMMAND_ENCRYPTED}


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("player", PLAYERS)
def test_plays_to_the_end(matrix, player, clip):
    report = _report(matrix, player, clip)
    assert not report["errors"], _describe(report)
    assert report["ended"], _describe(report)
    where = report["where"]
    assert where["currentTime"] >= where["duration"] - 0.25, _describe(report)


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("player", [player for player in PLAYERS if player != "native"])
def test_lists_the_captions(matrix, player, clip):
    """The content's captions, added after encoding, as each player offers them (native HLS
    is left out: Chromium builds its text tracks later, when it starts the subtitle playlist)."""
    report = _report(matrix, player, clip)
    assert report["textTracks"] == [CAPTION_TRACK], _describe(report)


@pytest.mark.parametrize("player", PLAYERS)
def test_plays_across_the_chunk_joins_without_a_jump(matrix, player):
    """The chunked clip's joins (where one video chunk's segments follow another's) are seamless
    to every player: while it plays on at 4x, none seeks at a join, as players jump over a hole
    in the timeline (a player stuck at one never ends: test_plays_to_the_end). A wait there is
    not judged: each chunk is one segment, so a busy machine's late segment looks the same.
    (Seeks after the end are dash.js's own, see harness.js's markEnded.)"""
    report = _report(matrix, player, "chunked")
    events = [event.rsplit("@", 1) for event in report["timeline"]]
    names = [name for name, _ in events]
    assert "finishing" in names, _describe(report)
    # "end" is the harness's first end signal: the element's `ended`, or dash.js's own when its
    # timer saw the end first and paused the element, which then never fires `ended`.
    assert "end" in names, _describe(report)
    playing_on = events[names.index("finishing") : names.index("end")]
    joins = [CHUNK_SECONDS * n for n in (1, 2)]  # 4 s and 8 s of 13.3
    jumps = [
        at
        for name, at in playing_on
        if name == "seeking" and any(abs(float(at) - join) < 0.5 for join in joins)
    ]
    assert not jumps, _describe(report)


# Chromium's native HLS has no API to list or ask for a rendition, so switching and the size of
# each rendition are asked of the players that have one; native HLS is played to the end above.
SWITCHING = [player for player in PLAYERS if player != "native"]


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("player", SWITCHING)
def test_switches_rendition_when_asked(matrix, player, clip):
    report = _report(matrix, player, clip)
    assert len(report["renditions"]) == 2, report["renditions"]
    assert report["switched"], f"{report['switchError']}\n{_describe(report)}"


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("player", SWITCHING)
def test_the_picture_has_the_declared_size(matrix, player, clip):
    """Before and after the switch, the picture is exactly the size the manifest declares for
    the rendition playing: square pixels (non-square ones make a 426x240 rung show as 427x240)."""
    report = _report(matrix, player, clip)
    if not report["switched"]:
        pytest.fail(f"never switched: {report['switchError']}")
    sizes = [
        (report["before"]["declared"], report["before"]["shown"]),
        (report["asked"], report["switched"]),
    ]
    wrong = [
        f"declared {want['width']}x{want['height']}, shown {shown['width']}x{shown['height']}"
        for want, shown in sizes
        if (shown["width"], shown["height"]) != (want["width"], want["height"])
    ]
    assert not wrong, "; ".join(wrong)


def test_the_encrypted_clip_is_public_files_and_a_gated_key(stack):
    grant = stack.grant(ENCRYPTED)
    assert "?k=" in grant["hls_url"]
    assert "?k=" in grant["dash_url"]
    with urllib.request.urlopen(grant["hls_url"], timeout=30) as response:
        master = response.read().decode()
    assert '#EXT-X-DEFINE:NAME="sgkey"' in master
    media = next(line for line in master.splitlines() if line.startswith("/public/"))
    with urllib.request.urlopen(stack.base + media, timeout=30) as response:  # no token at all
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert '#EXT-X-KEY:METHOD=AES-128,URI="{$sgkey}"' in response.read().decode()
    key_url = master.split('VALUE="', 1)[1].split('"', 1)[0]
    with urllib.request.urlopen(key_url, timeout=30) as response:
        assert len(response.read()) == 16
    refused = urllib.request.Request(key_url.split("?", 1)[0])
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(refused, timeout=30)
    assert error.value.code == 401
