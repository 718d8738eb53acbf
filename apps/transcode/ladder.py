"""Which renditions to encode for a source: pure domain code, no Django, no FFmpeg.

Rungs are chosen by output height against the source's displayed height (rotation applied):
never upscale; a source smaller than the lowest rung gets one rung at its own size. Widths keep
the displayed aspect ratio and, like heights, are even (4:2:0 chroma needs it).
"""

from dataclasses import dataclass
from fractions import Fraction

MAX_WIDTH = 7680  # 8K UHD
MAX_HEIGHT = 4320


@dataclass(frozen=True)
class Rung:
    """One configured rung: bits per second for the average, the cap and the VBV buffer."""

    name: str
    height: int
    bitrate: int
    maxrate: int
    bufsize: int


@dataclass(frozen=True)
class PlannedRung:
    name: str
    width: int
    height: int
    bitrate: int
    maxrate: int
    bufsize: int


class UnusableSource(ValueError):
    """The source cannot be encoded; the message is for the creator."""


def rungs_from_settings(entries: list[dict]) -> list[Rung]:
    """Rungs from TRANSCODE_LADDER entries, tallest first."""
    rungs = [Rung(**entry) for entry in entries]
    if not rungs:
        raise ValueError("TRANSCODE_LADDER must name at least one rung")
    return sorted(rungs, key=lambda rung: rung.height, reverse=True)


def even(value: float) -> int:
    """The nearest even integer, at least 2."""
    return max(2, int(round(value / 2)) * 2)


def floor_even(value: float) -> int:
    """The largest even integer not above ``value``, at least 2 (never upscale to round)."""
    return max(2, int(value) // 2 * 2)


def check_source(*, width: int, height: int, duration: float | None) -> None:
    """Raise UnusableSource for what we refuse to encode."""
    if width <= 0 or height <= 0:
        raise UnusableSource("This video has no picture size; the file is probably damaged.")
    if not duration or duration <= 0:
        raise UnusableSource("This video has no duration; the file is empty or damaged.")
    if max(width, height) > MAX_WIDTH or min(width, height) > MAX_HEIGHT:
        raise UnusableSource(
            f"This video is {width}x{height}; StreamGate accepts up to 8K ({MAX_WIDTH}x"
            f"{MAX_HEIGHT}). Export it at a smaller size."
        )


def check_complete(*, expected: float, encoded: float) -> None:
    """Raise UnusableSource when far less video came out than the source announced: FFmpeg
    decodes what it can of a truncated file and stops without an error."""
    if encoded < expected * 0.9 - 0.5:
        raise UnusableSource(
            f"The file ends after {encoded:.1f} s although it says it lasts {expected:.1f} s: it "
            "is probably truncated (an upload or export that did not finish). Upload it again."
        )


def plan_ladder(*, display_width: int, display_height: int, rungs: list[Rung]) -> list[PlannedRung]:
    """The rungs to encode for a source shown at ``display_width`` x ``display_height``."""
    aspect = Fraction(display_width, display_height)

    def width_for(height: int) -> int:
        return min(even(height * aspect), floor_even(display_width))

    fitting = [rung for rung in rungs if rung.height <= display_height]
    if not fitting:
        lowest = min(rungs, key=lambda rung: rung.height)
        height = floor_even(display_height)
        width = width_for(height)
        # Scale the lowest rung's bitrates by the pixels we actually have.
        share = Fraction(width * height, even(lowest.height * aspect) * lowest.height)
        return [
            PlannedRung(
                name=f"{height}p",
                width=width,
                height=height,
                bitrate=max(100_000, int(lowest.bitrate * share)),
                maxrate=max(110_000, int(lowest.maxrate * share)),
                bufsize=max(200_000, int(lowest.bufsize * share)),
            )
        ]
    return [
        PlannedRung(
            name=rung.name,
            width=width_for(rung.height),
            height=rung.height,
            bitrate=rung.bitrate,
            maxrate=rung.maxrate,
            bufsize=rung.bufsize,
        )
        for rung in fitting
    ]


def output_frame_rate(*, frame_rate: Fraction | None, maximum: int) -> Fraction:
    """The constant rate to encode at: the source's (nominal) rate, capped; 30 if unknown."""
    if not frame_rate or frame_rate <= 0 or frame_rate > 1000:
        return Fraction(30)
    return min(Fraction(frame_rate), Fraction(maximum))
