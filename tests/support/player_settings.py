"""Settings for tests/web/test_players.py: the laptop's settings with a two-rung ladder (the
two smallest rungs of the configured one), so that every clip of the matrix encodes in seconds
while each player still has a rendition to switch to."""

from streamgate.settings.local import *  # noqa: F403
from streamgate.settings.local import TRANSCODE_LADDER

TRANSCODE_LADDER = TRANSCODE_LADDER[-2:]
