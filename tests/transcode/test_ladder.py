from fractions import Fraction

import pytest
from django.conf import settings

from apps.transcode.ladder import (
    UnusableSource,
    check_source,
    output_frame_rate,
    plan_ladder,
    rungs_from_settings,
    standard_rate,
)

DEFAULT = rungs_from_settings(settings.TRANSCODE_LADDER)


def plan(width, height, rungs=DEFAULT, **options):
    return plan_ladder(display_width=width, display_height=height, rungs=rungs, crf=23, **options)


def sizes(width, height, rungs=DEFAULT):
    return [(r.name, r.width, r.height) for r in plan(width, height, rungs)]


def test_1080p_source_gets_the_whole_default_ladder_in_exact_16_9():
    # 16:9 has no even square-pixel size 480 or 240 high: the nearest ones (Apple's 416x234).
    assert sizes(1920, 1080) == [
        ("1080p", 1920, 1080),
        ("720p", 1280, 720),
        ("480p", 864, 486),
        ("360p", 640, 360),
        ("240p", 416, 234),
    ]


def test_never_upscales():
    assert [name for name, _, _ in sizes(1280, 720)] == ["720p", "480p", "360p", "240p"]
    assert [name for name, _, _ in sizes(1000, 500)] == ["480p", "360p", "240p"]


def test_portrait_is_chosen_by_its_short_side():
    """A 1080x1920 phone video is 1080p: its top rung is 1080x1920, not 608x1080."""
    assert sizes(1080, 1920)[0] == ("1080p", 1080, 1920)
    assert sizes(720, 1280) == [
        ("720p", 720, 1280),
        ("480p", 486, 864),
        ("360p", 360, 640),
        ("240p", 234, 416),
    ]
    tall = plan(1080, 1920)[0]
    assert (tall.maxrate, tall.bufsize) == (DEFAULT[0].maxrate, DEFAULT[0].bufsize)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (1920, 1080),
        (1080, 1920),
        (854, 480),
        (853, 480),
        (1918, 1080),
        (2560, 1080),
        (1440, 1080),
        (720, 480),
        (4096, 2160),
        (1280, 544),
        (1000, 500),
        (321, 241),
    ],
)
def test_every_ladder_has_one_exact_shape_even_sides_and_the_sources_aspect(width, height):
    """DASH switches between rungs of one adaptation set: they must show the same picture
    shape exactly (FFmpeg's DASH muxer refuses otherwise) with square pixels."""
    planned = plan(width, height)
    shapes = {Fraction(r.width, r.height) for r in planned}
    assert len(shapes) == 1, planned
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in planned)
    assert abs(shapes.pop() / Fraction(width, height) - 1) <= Fraction(1, 100)
    assert all(r.width <= width and r.height <= height for r in planned)
    assert len({(r.width, r.height) for r in planned}) == len(planned)


def test_a_480p_source_keeps_480_lines():
    # 854x480 has no 360-line sibling of its exact shape; 53:30 (0.7 % narrower) has both.
    assert sizes(854, 480) == [("480p", 848, 480), ("360p", 636, 360), ("240p", 424, 240)]


def test_odd_dimensions_become_even_without_growing():
    assert sizes(321, 241)[0] == ("240p", 320, 240)


def test_a_source_below_the_lowest_rung_gets_one_rung_of_its_own_size():
    (only,) = plan(201, 151)
    assert (only.name, only.width, only.height) == ("150p", 200, 150)
    lowest = DEFAULT[-1]
    assert 0 < only.maxrate < lowest.maxrate
    assert only.bufsize < lowest.bufsize


def test_wide_and_anamorphic_aspects():
    assert sizes(2560, 1080)[0] == ("1080p", 2556, 1080)  # 71:30, 0.2 % from 64:27
    assert sizes(720, 480)[0] == ("480p", 720, 480)


def test_a_low_bitrate_source_caps_every_rung_by_what_it_carries():
    """A 1080p source at 0.6 Mb/s: no rung may be capped above the source's own bits for its
    pixels (times the share), and the ladder's caps together stay under 1.5x the source."""
    source = 600_000
    planned = plan(1920, 1080, source_bitrate=source, source_share=Fraction(3, 4))
    for rung in planned:
        share = Fraction(rung.width * rung.height, 1920 * 1080)
        floor = next(r for r in DEFAULT if r.name == rung.name).maxrate // 20
        assert rung.maxrate <= max(source * share * Fraction(3, 4), floor) + 1
        assert rung.crf == 23
    assert planned[0].maxrate == 450_000
    assert sum(r.maxrate for r in planned) <= 1.5 * source
    # The VBV buffer keeps the configured buffer-to-rate ratio.
    top = DEFAULT[0]
    assert planned[0].bufsize == pytest.approx(450_000 * top.bufsize / top.maxrate, rel=1e-3)


def test_a_rich_or_unknown_source_keeps_the_configured_caps():
    for bitrate in (40_000_000, None):
        planned = plan(1920, 1080, source_bitrate=bitrate)
        assert [r.maxrate for r in planned] == [r.maxrate for r in DEFAULT]


def test_a_starved_source_still_gets_a_floor():
    planned = plan(1920, 1080, source_bitrate=10_000)
    assert [r.maxrate for r in planned] == [r.maxrate // 20 for r in DEFAULT]


@pytest.mark.parametrize(
    ("width", "height", "duration", "message"),
    [
        (7681, 4320, 10, "up to 8K"),
        (8192, 8192, 10, "up to 8K"),
        (1920, 1080, 0, "no duration"),
        (1920, 1080, None, "no duration"),
        (0, 1080, 10, "no picture size"),
    ],
)
def test_unusable_sources(width, height, duration, message):
    with pytest.raises(UnusableSource, match=message):
        check_source(width=width, height=height, duration=duration)


def test_8k_itself_is_fine():
    check_source(width=7680, height=4320, duration=1)
    check_source(width=4320, height=7680, duration=1)  # portrait 8K


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (Fraction(30000, 1001), Fraction(30000, 1001)),
        (Fraction(120), Fraction(60)),
        (None, Fraction(30)),
        (Fraction(0), Fraction(30)),
        (Fraction(90000), Fraction(30)),  # a timebase, not a frame rate
    ],
)
def test_output_frame_rate(rate, expected):
    assert output_frame_rate(frame_rate=rate, maximum=60) == expected


@pytest.mark.parametrize(
    ("measured", "nominal", "expected"),
    [
        (30.075, None, Fraction(30)),  # 10 frames over 266 ms: millisecond timestamps
        (29.96, Fraction(30000, 1001), Fraction(30000, 1001)),
        (60.2, Fraction(1000), Fraction(60)),  # a 1 ms timebase is not a frame rate
        (20.01, None, Fraction(20)),
        (59.94, None, Fraction(60000, 1001)),
        (12.4, None, Fraction(12)),
    ],
)
def test_standard_rate(measured, nominal, expected):
    assert standard_rate(measured, nominal) == expected
