"""Real media for tests, generated with FFmpeg's testsrc2 and sine sources."""

import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg


def ffmpeg_binary() -> str:
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", *args], check=True, timeout=300)


def make_video(
    path: Path,
    *,
    seconds: float = 2,
    size: str = "320x240",
    rate: int = 25,
    audio: bool = True,
    pix_fmt: str = "yuv420p",
    video_filter: str | None = None,
    extra: list[str] | None = None,
) -> Path:
    """Encode a short H.264 (+ AAC) clip to ``path`` and return it."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    if video_filter:
        args += ["-vf", video_filter]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    ffmpeg(*args, *(extra or []), str(path))
    return path


def make_rotated(path: Path, source: Path, degrees: int) -> Path:
    """``source`` with a display matrix saying 'rotate by ``degrees``' (as phones write)."""
    ffmpeg("-display_rotation:v:0", str(degrees), "-i", str(source), "-c", "copy", str(path))
    return path


def make_variable_rate(path: Path, *, seconds: float = 4) -> Path:
    """A clip whose frames are 1/30 s apart for two seconds, then 1/15 s apart."""
    return make_video(
        path,
        seconds=seconds,
        rate=30,
        audio=False,
        video_filter=r"select='lt(n\,60)+not(mod(n\,2))'",
        extra=["-fps_mode", "vfr"],
    )


def make_audio(path: Path, *, seconds: float = 1) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=duration={seconds}", "-c:a", "aac", str(path))
    return path


def make_padded_video(path: Path, *, total_bytes: int) -> Path:
    """A valid video file of at least ``total_bytes``: a clip plus an MP4 'free' box of padding.

    Players and probes skip 'free' boxes, so the file stays a readable video of any size.
    """
    clip = make_video(path.with_suffix(".clip.mp4"), extra=["-movflags", "+faststart"])
    data = clip.read_bytes()
    padding = max(0, total_bytes - len(data) - 8)
    with path.open("wb") as out:
        out.write(data)
        out.write((padding + 8).to_bytes(4, "big") + b"free")
        chunk = b"\0" * (1024 * 1024)
        while padding:
            out.write(chunk[: min(padding, len(chunk))])
            padding -= min(padding, len(chunk))
    clip.unlink()
    return path


def make_rate_burst(path: Path, *, seconds: float = 4, slow: int = 20, fast: int = 60) -> Path:
    """An MP4 at ``slow`` fps with one second at ``fast`` fps from t=2 s (a phone's slow-motion
    stretch, a screen capture's busy moment). Timestamps are in milliseconds, as screen
    recorders and Matroska write them: 60 fps frames are 16 or 17 ms apart."""
    step = fast // slow
    keep = rf"between(t\,2\,{3 - 1 / fast:.4f})+not(mod(n\,{step}))"
    return make_video(
        path,
        seconds=seconds,
        size="320x240",
        rate=fast,
        audio=False,
        video_filter=f"select='{keep}'",
        extra=["-fps_mode", "vfr", "-video_track_timescale", "1000"],
    )
