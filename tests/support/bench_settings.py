"""Settings for tests/benchmarks/playback.py: the local settings plus a plain static view.

The benchmark compares the token-checked stream view with plain views of the same server, so
the URLconf adds ``/plain/<path>`` (the same storage response, no token) and ``/static-serve/``
(Django's own ``django.views.static.serve``) next to StreamGate's URLs."""

from streamgate.settings.local import *  # noqa: F403

ROOT_URLCONF = "tests.support.bench_urls"
