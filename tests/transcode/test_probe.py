"""Probing with PyAV: ordinary containers are described; anything that would make FFmpeg open
another file or URL is refused before its demuxer runs, with one message whatever it names."""

import pytest

from apps.transcode.probe import NotMedia, probe
from tests.support.hostile_media import HOSTILE_CASES, NEUTRAL_ERROR, hostile_upload, jpeg_frame
from tests.support.media import make_video
from tests.support.tripwires import OpenWatch, TcpListener


@pytest.fixture(scope="module")
def other_content(tmp_path_factory):
    """Another creator's stored source, which no upload may read."""
    return make_video(tmp_path_factory.mktemp("sources") / "clip.mp4", seconds=1)


@pytest.fixture
def listener():
    listening = TcpListener()
    yield listening
    listening.close()


@pytest.fixture
def watch(other_content):
    watching = OpenWatch(other_content.parent)
    yield watching
    watching.close()


def _refusal(source) -> str:
    with pytest.raises(NotMedia) as refused:
        probe(source)
    return str(refused.value)


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_a_hostile_input_opens_nothing_and_gets_the_neutral_message(
    case, tmp_path, listener, watch, other_content
):
    """As finalisation probes it (a file object) and as the transcode job does (a path)."""
    name, data = hostile_upload(case, port=listener.port, victim=other_content, workdir=tmp_path)
    stored = tmp_path / name
    stored.write_bytes(data)
    with stored.open("rb") as handle:
        messages = [_refusal(handle), _refusal(str(stored))]
    assert listener.connections == 0, listener.requests
    assert watch.opened() == []
    assert messages == [NEUTRAL_ERROR, NEUTRAL_ERROR]


@pytest.mark.parametrize("frames", [0, 3], ids=["no-frames", "frames"])
def test_an_image_sequence_pattern_reads_no_frames(tmp_path, frames):
    """A path with a frame-number pattern would make the image2 demuxer read every frame
    file next to it; whether they exist must not show either."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(1, frames + 1):
        jpeg_frame(folder / f"frame{number:03d}.jpg")
    watching = OpenWatch(folder)
    try:
        assert _refusal(str(folder / "frame%03d.jpg")) == NEUTRAL_ERROR
        assert watching.opened() == []
    finally:
        watching.close()


def test_text_is_refused_with_the_neutral_message(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes\n" * 50)
    with notes.open("rb") as handle:
        assert _refusal(handle) == NEUTRAL_ERROR
    assert _refusal(str(notes)) == NEUTRAL_ERROR


@pytest.mark.parametrize(
    ("name", "extra", "container"),
    [
        ("clip.mp4", [], "mov,mp4,m4a,3gp,3g2,mj2"),
        ("clip.mov", [], "mov,mp4,m4a,3gp,3g2,mj2"),
        ("clip.mkv", [], "matroska,webm"),
        ("clip.ts", [], "mpegts"),
        ("clip.webm", ["-c:v", "libvpx-vp9", "-c:a", "libopus", "-deadline", "realtime"], None),
    ],
)
def test_ordinary_videos_are_described(tmp_path, name, extra, container):
    video = make_video(tmp_path / name, seconds=1, extra=extra)
    with video.open("rb") as handle:
        from_handle = probe(handle)
    from_path = probe(str(video))
    assert from_handle == from_path
    assert (from_path.width, from_path.height) == (320, 240)
    assert from_path.container == (container or "matroska,webm")
    assert from_path.has_audio
