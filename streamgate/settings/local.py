"""A laptop: debug on, a development secret key, everything else from base's defaults."""

from streamgate.settings.base import *  # noqa: F403
from streamgate.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Only for local runs; production.py refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = SECRET_KEY or "django-insecure-local-development-key-not-for-production"  # noqa: F405
CORS_ALLOWED_ORIGINS = env.list(
    "CORS_ALLOWED_ORIGINS", default=["http://127.0.0.1:8000", "http://localhost:8000"]
)
# Readable logs on a laptop; JSON (the default elsewhere) with LOG_FORMAT=json.
LOGGING["handlers"]["console"]["formatter"] = env.str("LOG_FORMAT", default="plain")  # noqa: F405
