"""Uploads crafted to make FFmpeg open something other than themselves: playlists, manifests and
lists whose demuxers fetch the resources they name. Each builder returns (file name, bytes), as a
creator would upload them."""

from pathlib import Path

from tests.support.media import ffmpeg
from tests.support.tripwires import closed_port


def hls_playlist(segment_url: str) -> tuple[str, bytes]:
    """An HLS media playlist whose one segment is ``segment_url``."""
    text = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:4.0,\n{segment_url}\n#EXT-X-ENDLIST\n"
    )
    return "holiday.m3u8", text.encode()


def dash_manifest(base_url: str) -> tuple[str, bytes]:
    """A DASH MPD whose segments live under ``base_url``."""
    text = f"""<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
     type="static" mediaPresentationDuration="PT4.0S" minBufferTime="PT2.0S">
 <Period id="0" start="PT0.0S">
  <AdaptationSet id="0" contentType="video" mimeType="video/mp4">
   <Representation id="0" codecs="avc1.64000d" bandwidth="100000" width="320" height="240">
    <SegmentTemplate timescale="1000" duration="4000" startNumber="1"
     initialization="{base_url}init.m4s" media="{base_url}chunk-$Number$.m4s"/>
   </Representation>
  </AdaptationSet>
 </Period>
</MPD>
"""
    return "holiday.mpd", text.encode()


def concat_list(entry: str) -> tuple[str, bytes]:
    """An ffconcat script naming ``entry`` (a URL, an absolute path or a sibling file)."""
    return "holiday.ffconcat", f"ffconcat version 1.0\nfile '{entry}'\n".encode()


def sdp_session(port: int) -> tuple[str, bytes]:
    """An SDP description: its demuxer opens RTP/UDP sockets for the media it announces."""
    text = (
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=holiday\nc=IN IP4 127.0.0.1\nt=0 0\n"
        f"m=video {port} RTP/AVP 96\na=rtpmap:96 H264/90000\n"
    )
    return "holiday.sdp", text.encode()


def jpeg_frame(path: Path) -> Path:
    """One real JPEG image (image2 demuxers read these, one file per frame)."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", str(path))
    return path


# The message every refused upload gets, whatever it names and whether that exists or answers:
# anything more would tell an attacker which ports are open and which files exist.
NEUTRAL_ERROR = "This file is not a video we can read. Upload an MP4, MOV, MKV or WebM video."

HOSTILE_CASES = (
    "hls-open-port",
    "hls-closed-port",
    "hls-other-content",
    "hls-missing-file",
    "dash-open-port",
    "dash-other-content",
    "concat-open-port",
    "concat-other-content",
    "sdp",
    "image2-pattern",
)


def hostile_upload(case: str, *, port: int, victim: Path, workdir: Path) -> tuple[str, bytes]:
    """The upload for one of HOSTILE_CASES: ``port`` is a listener's, ``victim`` another
    content's stored source, ``workdir`` a scratch folder."""
    other = victim.parent
    if case == "hls-open-port":
        return hls_playlist(f"http://127.0.0.1:{port}/segment.ts")
    if case == "hls-closed-port":
        return hls_playlist(f"http://127.0.0.1:{closed_port()}/segment.ts")
    if case == "hls-other-content":
        return hls_playlist(f"file://{victim}")
    if case == "hls-missing-file":
        return hls_playlist(f"file://{other}/missing.mp4")
    if case == "dash-open-port":
        return dash_manifest(f"http://127.0.0.1:{port}/")
    if case == "dash-other-content":
        return dash_manifest(f"file://{other}/")
    if case == "concat-open-port":
        return concat_list(f"http://127.0.0.1:{port}/clip.mp4")
    if case == "concat-other-content":
        return concat_list(str(victim))
    if case == "sdp":
        return sdp_session(closed_port())
    if case == "image2-pattern":
        return "shot%03d.jpg", jpeg_frame(workdir / "shot001.jpg").read_bytes()
    raise ValueError(case)
