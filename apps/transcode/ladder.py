"""Which renditions to encode for a source: pure domain code, no Django, no FFmpeg.

Rungs are named by their SHORT side, as the big platforms do: 1920x1080 and 1080x1920 are both
"1080p". A rung is kept when it fits the source's displayed short side (rotation applied, pixels
made square): never upscale; a source smaller than the lowest rung gets one rung of its own size.

Every rung has square pixels and even dimensions (4:2:0 chroma), and all rungs of a ladder share
one exact shape, because a DASH adaptation set holds interchangeable pictures (FFmpeg's DASH muxer
refuses rungs whose display aspects differ by even a hair). 16:9 has no even square-pixel size
480 or 240 high, so a 16:9 ladder is 1920x1080, 1280x720, 864x486, 640x360, 416x234 (Apple's
authoring spec uses the same 416x234); a source whose own aspect has no usable sizes gets the
nearest shape that does, within 1 % (a squeeze no one can see, as 854x480 beside 1920x1080 is).

Rate: capped constant quality. x264 spends what each picture needs (``crf``) up to the rung's
``maxrate``/``bufsize`` cap, and the cap never exceeds what the source carries: its video bits
per pixel times the rung's pixels, times ``source_share`` (re-encoding a lossy source at its own
rate reproduces its artifacts, not more picture). A floor of 1/20 of the configured cap keeps a
source that misreports its rate watchable.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

MAX_WIDTH = 7680  # 8K UHD
MAX_HEIGHT = 4320
# How far the ladder's shape may stray from the source's display aspect.
ASPECT_TOLERANCE = Fraction(1, 100)
# Shapes with denominators up to this are tried (a 1080p shape step of 2x540 is the coarsest).
MAX_SHAPE_DENOMINATOR = 540
# The lowest cap a source's rate may impose, as a share of the configured cap.
FLOOR_SHARE = Fraction(1, 20)


@dataclass(frozen=True)
class Rung:
    """One configured rung: its short side, and the cap (bits per second, VBV buffer bits)."""

    name: str
    height: int  # the short side: 1080 for 1920x1080 and for 1080x1920
    maxrate: int
    bufsize: int


@dataclass(frozen=True)
class PlannedRung:
    name: str
    width: int
    height: int
    maxrate: int
    bufsize: int
    crf: int


class UnusableSource(ValueError):
    """The source cannot be encoded; the message is for the creator."""


def rungs_from_settings(entries: list[dict]) -> list[Rung]:
    """Rungs from TRANSCODE_LADDER entries, tallest first."""
    rungs = [Rung(**entry) for entry in entries]
    if not rungs:
        raise ValueError("TRANSCODE_LADDER must name at least one rung")
    return sorted(rungs, key=lambda rung: rung.height, reverse=True)


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


def plan_ladder(
    *,
    display_width: int,
    display_height: int,
    rungs: list[Rung],
    crf: int,
    source_bitrate: int | None = None,
    source_share: Fraction = Fraction(3, 4),
) -> list[PlannedRung]:
    """The rungs to encode for a source shown at ``display_width`` x ``display_height`` whose
    video carries ``source_bitrate`` bits per second (None: unknown, no cap from the source)."""
    portrait = display_height > display_width
    long_side, short_side = max(display_width, display_height), min(display_width, display_height)
    fitting = [rung for rung in rungs if rung.height <= short_side]
    if fitting:
        sizes = ladder_sizes(
            long_side=long_side, short_side=short_side, targets=[r.height for r in fitting]
        )
        chosen = [(rung, size) for rung, size in zip(fitting, sizes, strict=True) if size]
    else:
        # One rung of the source's own size; the lowest rung's cap scaled by its pixels.
        lowest = min(rungs, key=lambda rung: rung.height)
        share = Fraction(long_side * short_side) / (Fraction(16, 9) * lowest.height**2)
        share = min(Fraction(1), max(share, FLOOR_SHARE))
        own = Rung(
            name=f"{floor_even(short_side)}p",
            height=short_side,
            maxrate=int(lowest.maxrate * share),
            bufsize=int(lowest.bufsize * share),
        )
        chosen = [(own, (floor_even(long_side), floor_even(short_side)))]
    planned = []
    for rung, (long_px, short_px) in chosen:
        width, height = (short_px, long_px) if portrait else (long_px, short_px)
        maxrate = rung.maxrate
        if source_bitrate:
            pixels = Fraction(long_px * short_px, long_side * short_side)
            carried = source_bitrate * source_share * pixels
            maxrate = min(maxrate, max(int(carried), int(rung.maxrate * FLOOR_SHARE)))
        bufsize = int(rung.bufsize * Fraction(maxrate, rung.maxrate))
        planned.append(PlannedRung(rung.name, width, height, maxrate, bufsize, crf))
    return planned


def ladder_sizes(
    *, long_side: int, short_side: int, targets: list[int]
) -> list[tuple[int, int] | None]:
    """(long, short) for each target short side (tallest first), all of one exact shape, even
    and within the source; None for a target that would repeat the size above it."""
    aspect = long_side / short_side
    best: tuple[float, list] | None = None
    for p, q in _shapes(Fraction(long_side, short_side)):
        sizes = _snap(p, q, long_side, short_side, targets)
        if sizes is not None:
            cost = _cost(p / q / aspect - 1, sizes, targets)
            if best is None or cost < best[0]:
                best = (cost, sizes)
    if best is None:  # no shape within tolerance fits: one rung of the source's own size
        return [(floor_even(long_side), floor_even(short_side))] + [None] * (len(targets) - 1)
    return best[1]


def _shapes(aspect: Fraction) -> list[tuple[int, int]]:
    """Shapes p:q (long:short, in lowest terms) within ASPECT_TOLERANCE of ``aspect``, the exact
    one first. Integer arithmetic: this runs for hundreds of denominators."""
    a, b = aspect.numerator, aspect.denominator
    shapes = [(a, b)] if b <= MAX_SHAPE_DENOMINATOR else []
    for q in range(1, MAX_SHAPE_DENOMINATOR + 1):
        below = a * q // b
        for p in (below, below + 1):
            # |p/q - a/b| <= tolerance * a/b, without fractions.
            close = abs(p * b - a * q) * ASPECT_TOLERANCE.denominator
            near = close <= ASPECT_TOLERANCE.numerator * a * q
            if p >= q and near and math.gcd(p, q) == 1 and (p, q) != (a, b):
                shapes.append((p, q))
    return shapes


def _snap(p: int, q: int, long_side: int, short_side: int, targets: list[int]):
    """Sizes p*m x q*m nearest each target, m even so that both sides are even; None when the
    shape has no such size within the source."""
    most = min(short_side // q, long_side // p) // 2 * 2
    if most < 2:
        return None
    sizes: list[tuple[int, int] | None] = []
    previous = None
    for target in targets:
        multiple = min(most, max(2, round(target / (2 * q)) * 2))
        size = (p * multiple, q * multiple)
        sizes.append(size if size != previous else None)
        previous = size
    return sizes


def _cost(distortion: float, sizes: list, targets: list[int]) -> float:
    """The shape's distortion (weighted thrice: every rung shows it), the top rung's distance
    from its target and a quarter of the worst lower rung's; a lost rung costs 1."""
    deviations = [
        abs(size[1] / target - 1) if size else 1.0
        for size, target in zip(sizes, targets, strict=True)
    ]
    return 3 * abs(distortion) + deviations[0] + max(deviations[1:], default=0.0) / 4


# Frame rates cameras and editors use; a measured rate within 2 % of one is that one.
STANDARD_RATES = [
    Fraction(24000, 1001),
    Fraction(24),
    Fraction(25),
    Fraction(30000, 1001),
    Fraction(30),
    Fraction(48),
    Fraction(50),
    Fraction(60000, 1001),
    Fraction(60),
    Fraction(120),
]


def output_frame_rate(*, frame_rate: Fraction | None, maximum: int) -> Fraction:
    """The constant rate to encode at: ``frame_rate`` (the source's peak), capped; 30 if
    unknown or implausible (a timebase such as 1000 or 90000 is not a frame rate)."""
    if not frame_rate or frame_rate <= 0 or frame_rate > 1000:
        return Fraction(30)
    return min(Fraction(frame_rate), Fraction(maximum))


def standard_rate(measured: float, nominal: Fraction | None = None) -> Fraction:
    """``measured`` (frames per second from timestamps) as the rate it stands for: the nominal
    rate if it agrees within 2 %, else a standard rate within 2 %, else the nearest integer."""

    def distance(rate: Fraction) -> float:
        return abs(measured / float(rate) - 1)

    if nominal and distance(nominal) <= 0.02:
        return nominal
    nearest = min(STANDARD_RATES, key=distance)
    if distance(nearest) <= 0.02:
        return nearest
    return Fraction(max(1, round(measured)))
