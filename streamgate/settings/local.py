"""A laptop (`make run`): a secret key of this var/'s own, var/ private, debug only when asked.

No entry point picks this module by itself (asgi.py, wsgi.py, celery.py and manage.py default to
production): `make run` names it, and so do developers' shells (README).
"""

import os

from streamgate.settings.local_state import PRIVATE_UMASK, local_secret_key, var_dir_make_private

# Before base is imported: it makes var/'s folders (broker, static, database) as it loads.
os.umask(PRIVATE_UMASK)

from streamgate.settings.base import *  # noqa: E402, F403
from streamgate.settings.base import VAR_DIR, env  # noqa: E402
from streamgate.settings.environment import networks_parse  # noqa: E402

var_dir_make_private(var_dir=VAR_DIR)
# DJANGO_SECRET_KEY (or _FILE) when given, else a random key kept in var/secret-key.
SECRET_KEY = SECRET_KEY or local_secret_key(var_dir=VAR_DIR)  # noqa: F405
# DEBUG stays base's: off unless DJANGO_DEBUG=1 (debug pages list the URLconf and settings).
# FileSystemStorage chmods what it saves to FILE_UPLOAD_PERMISSIONS (0644 unless set).
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
# The laptop itself may read /metrics; anyone else needs METRICS_TOKEN.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
networks_parse(METRICS_ALLOWED_IPS, name="METRICS_ALLOWED_IPS")
CORS_ALLOWED_ORIGINS = env.list(
    "CORS_ALLOWED_ORIGINS", default=["http://127.0.0.1:8000", "http://localhost:8000"]
)
# Readable logs on a laptop; JSON (the default elsewhere) with LOG_FORMAT=json.
LOGGING["handlers"]["console"]["formatter"] = env.str("LOG_FORMAT", default="plain")  # noqa: F405
# Webhook endpoints on this laptop (a receiver on 127.0.0.1) are allowed; production refuses
# private addresses (README "Webhooks"). Mail (a disabled endpoint's notice) goes to the console.
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=True)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
