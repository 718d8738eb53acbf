"""The local settings (`make run`) with tests.support.error_urls, whose /fails/ answers 500."""

from streamgate.settings.local import *  # noqa: F403

ROOT_URLCONF = "tests.support.error_urls"
