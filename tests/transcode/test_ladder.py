from fractions import Fraction

import pytest
from django.conf import settings

from apps.transcode.ladder import (
    UnusableSource,
    check_source,
    output_frame_rate,
    plan_ladder,
    rungs_from_settings,
)

DEFAULT = rungs_from_settings(settings.TRANSCODE_LADDER)


def sizes(width, height, rungs=DEFAULT):
    return [
        (r.name, r.width, r.height)
        for r in plan_ladder(display_width=width, display_height=height, rungs=rungs)
    ]


def test_1080p_source_gets_the_whole_default_ladder():
    assert sizes(1920, 1080) == [
        ("1080p", 1920, 1080),
        ("720p", 1280, 720),
        ("480p", 854, 480),
        ("360p", 640, 360),
        ("240p", 426, 240),
    ]


def test_never_upscales():
    assert [name for name, _, _ in sizes(1280, 720)] == ["720p", "480p", "360p", "240p"]
    assert [name for name, _, _ in sizes(1000, 500)] == ["480p", "360p", "240p"]


def test_portrait_keeps_its_shape_and_widths_are_even():
    planned = sizes(720, 1280)
    assert planned[0] == ("1080p", 608, 1080)
    assert all(w % 2 == 0 and h % 2 == 0 and w < h for _, w, h in planned)


def test_odd_dimensions_become_even_without_growing():
    assert sizes(321, 241)[0] == ("240p", 320, 240)


def test_a_source_below_the_lowest_rung_gets_one_rung_of_its_own_size():
    (only,) = plan_ladder(display_width=201, display_height=151, rungs=DEFAULT)
    assert (only.name, only.width, only.height) == ("150p", 200, 150)
    lowest = DEFAULT[-1]
    assert 100_000 <= only.bitrate < lowest.bitrate
    assert only.maxrate >= only.bitrate


def test_wide_and_anamorphic_aspects():
    assert sizes(2560, 1080)[0] == ("1080p", 2560, 1080)
    assert sizes(720, 480)[0] == ("480p", 720, 480)


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
