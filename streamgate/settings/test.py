"""The test suite: real PostgreSQL and Redis unless the environment names others.

Everything else is base's, plus a fast password hasher and a fixed secret key.
"""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/streamgate")
# pytest-xdist runs the suite in several processes (make test: two); each gets a Redis database
# of its own (gw0 1, gw1 2, ...), as pytest-django gives each its own PostgreSQL database: the
# suite flushes its database, and Celery queues and caches must not be shared between workers.
os.environ.setdefault(
    "REDIS_URL",
    f"redis://127.0.0.1:6379/{1 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:])}",
)
# A test's own transaction (pytest-django's) stays open while it encodes or waits on a browser;
# production's 60 s would end it on a busy machine. The bound itself has its own test.
os.environ.setdefault("DATABASE_IDLE_IN_TRANSACTION_SECONDS", "600")
# Media, broker folders and the like go to a fresh folder per run, never into the checkout's var/.
os.environ.setdefault("STREAMGATE_VAR_DIR", tempfile.mkdtemp(prefix="streamgate-test-"))

from streamgate.settings.base import *  # noqa: F403

SECRET_KEY = "test-only-secret-key"  # noqa: S105
# The suite scrapes /metrics through Django's test client (127.0.0.1), as make run's laptop does.
METRICS_ALLOWED_IPS = ["127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The suite signs in far more often than a person; the throttle has its own test.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {
        "signin": "100000/min",
        "playback": "100000/min",
        "uploads": "100000/min",
        "beacons": "100000/min",
    },
}
