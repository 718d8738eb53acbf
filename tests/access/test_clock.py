import pytest

from apps.access.templatetags.clock import clock


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, ""),
        (-1, ""),
        (0, "0:00"),
        (42.4, "0:42"),
        (59.6, "1:00"),
        (725, "12:05"),
        (3723, "1:02:03"),
        (36000, "10:00:00"),
    ],
)
def test_durations_read_as_players_show_them(seconds, shown):
    assert clock(seconds) == shown
