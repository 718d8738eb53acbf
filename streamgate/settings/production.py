"""Production: the secret key is required, cookies are secure and HTTPS is enforced."""

from django.core.exceptions import ImproperlyConfigured

from streamgate.settings.base import *  # noqa: F403
from streamgate.settings.base import env

# Every entry point defaults to these settings; a laptop names the local ones.
ON_A_LAPTOP = " (On a laptop: DJANGO_SETTINGS_MODULE=streamgate.settings.local.)"

if not SECRET_KEY:  # noqa: F405
    raise ImproperlyConfigured(
        "Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) in production." + ON_A_LAPTOP
    )
if not env.str("STREAMGATE_PUBLIC_URL", default=""):
    # Sign-in messages must name this site; a guessed origin would refuse every wallet.
    raise ImproperlyConfigured(
        "Set STREAMGATE_PUBLIC_URL to this site's public origin (e.g. https://video.example.com)."
        + ON_A_LAPTOP
    )

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
