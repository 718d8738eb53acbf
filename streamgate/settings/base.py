"""Settings shared by every environment, read from the environment with typed defaults.

One code path: with no variables set, StreamGate runs on embedded defaults (SQLite, media on local
disk under ``var/``, a local-memory cache, a filesystem Celery broker and a filesystem channel
layer). ``DATABASE_URL``, ``REDIS_URL`` and ``S3_*`` switch to PostgreSQL, Redis and S3.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ

from streamgate.settings.environment import (
    cache_config,
    celery_broker_config,
    channel_layer_config,
    database_config,
    networks_parse,
    read_secret,
    read_secret_json,
    sentry_init,
    storages_config,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if env.bool("STREAMGATE_READ_DOT_ENV", default=False):
    environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("STREAMGATE_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# With DEBUG on, error pages show the settings: hide the credentials inside URLs too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "streamgate.error_reports.CredentialsMaskingFilter"
SECRET_KEY = read_secret(env, "DJANGO_SECRET_KEY", default=None)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "channels",
    "corsheaders",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.content",
    "apps.uploads",
    "apps.transcode",
    "apps.access",
    "apps.chain",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "streamgate.client_address.ClientAddressMiddleware",
    "streamgate.observability.RequestIdMiddleware",
    "apps.content.audit.AuditRequestMiddleware",  # audit rows know the request (user, address)
    "apps.access.stream_cors.StreamCorsMiddleware",  # /stream/ answers any origin; outside the rest
    "streamgate.api_errors.ApiErrorMiddleware",  # JSON errors under /api/; before Host checks
    "streamgate.outages.DependencyOutageMiddleware",  # a dependency away: 503 + Retry-After
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.access.middleware.WalletSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "streamgate.security.SecurityHeadersMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "streamgate.urls"
WSGI_APPLICATION = "streamgate.wsgi.application"
ASGI_APPLICATION = "streamgate.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.access.context_processors.viewer",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")

# How long a web request waits for PostgreSQL (a pooled connection, then each answer) before
# it answers 503 + Retry-After (streamgate/database.py).
DATABASE_WAIT_SECONDS = env.float("DATABASE_WAIT_SECONDS", default=2.0)
# PostgreSQL ends a session idle inside a transaction this long, releasing its locks: one whose
# client vanished without the server hearing of it (0: never; streamgate/settings/environment.py).
DATABASE_IDLE_IN_TRANSACTION_SECONDS = env.int("DATABASE_IDLE_IN_TRANSACTION_SECONDS", default=60)
DATABASES = {
    "default": database_config(
        env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env.int("DATABASE_CONN_MAX_AGE", default=0),
        wait_seconds=DATABASE_WAIT_SECONDS,
        idle_in_transaction_seconds=DATABASE_IDLE_IN_TRANSACTION_SECONDS,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = cache_config(REDIS_URL, VAR_DIR / "cache")
# The edge (streamgate/edge.py) replays cached content API reads from Redis before Django runs.
EDGE_CACHE = env.bool("EDGE_CACHE", default=bool(REDIS_URL))
# What each web process keeps of the edge's entries in its own memory (bodies and headers).
EDGE_MEMORY_BYTES = env.int("EDGE_MEMORY_BYTES", default=32 * 1024 * 1024)
# A key URL's yes is remembered this long (less if the viewer's rental ends sooner) so that the
# next GET of that key is answered before Django, with Redis; 0: every key request to Django.
KEY_DECISION_SECONDS = env.int("KEY_DECISION_SECONDS", default=60)

CHANNEL_LAYERS = channel_layer_config(REDIS_URL, VAR_DIR / "channels")

MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise expects it, even before collectstatic
STATIC_URL = "/static/"
# Our CSS and JS, and static/dist/ (npm packages copied there by `make`).
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve static files from their sources too, so uvicorn needs no collectstatic on a laptop.
WHITENOISE_USE_FINDERS = True

S3_ENDPOINT_URL = env.str("S3_ENDPOINT_URL", default="")
S3_BUCKET = env.str("S3_BUCKET", default="")
STORAGES = storages_config(
    bucket=S3_BUCKET,
    endpoint_url=S3_ENDPOINT_URL,
    access_key=read_secret(env, "S3_ACCESS_KEY", default=""),
    secret_key=read_secret(env, "S3_SECRET_KEY", default=""),
    region=env.str("S3_REGION", default="us-east-1"),
    media_root=MEDIA_ROOT,
)

# --- Auth --------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out account or client before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "/signin/"
LOGIN_REDIRECT_URL = "/studio/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Bearer first: its WWW-Authenticate header turns "not signed in" into 401 rather than 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.access.authentication.BearerTokenAuthentication",
        "apps.access.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "apps.content.api.pagination.ContentPagination",
    # drf-spectacular's, plus each operation's bearer token scope.
    "DEFAULT_SCHEMA_CLASS": "apps.access.schema.ScopedAutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's defaults, with JSON nesting bounded (streamgate/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "streamgate.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "streamgate.api_errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Throttles count per REMOTE_ADDR, which ClientAddressMiddleware set from TRUSTED_PROXIES;
    # DRF's default (None) would key on the whole X-Forwarded-For a client sends.
    "NUM_PROXIES": 0,
    # Per client address; sign-in verification parses and checks signatures, nonces fill a table.
    # Playback issues signed URLs after a gate decision; upload creation makes rows and files.
    "DEFAULT_THROTTLE_RATES": {
        "signin": env.str("SIGNIN_RATE", default="60/min"),
        "playback": env.str("PLAYBACK_RATE", default="120/min"),
        "uploads": env.str("UPLOAD_CREATE_RATE", default="60/min"),
        # A player sends one beacon a minute and one as the page closes; this leaves room for
        # a household or an office behind one address (apps/access/audience.py).
        "beacons": env.str("BEACON_RATE", default="300/min"),
    },
}
# The webhook payloads, documented beside the endpoints that register them (OpenAPI 3.0 has
# no "webhooks" section; README "Webhooks" has the same text).
WEBHOOKS_SCHEMA_DESCRIPTION = """

## Webhooks

Register endpoints with `POST /api/v1/webhooks/`. Each event is POSTed as JSON, signed per
[Standard Webhooks](https://www.standardwebhooks.com/): headers `webhook-id` (`msg_...`, the same
on every retry; deduplicate on it), `webhook-timestamp` (Unix seconds of the attempt) and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`; two, space-separated, while
a rotated secret overlaps). Verify with any Standard Webhooks library and the `whsec_` secret.

Body: `{"type": "<event>", "timestamp": "<ISO 8601>", "data": {...}}`. Every content event's
`data` has `content_id`, `title`, `status`, `duration`, `width`, `height` (and `error`,
`error_kind` when failed). Events: `content.created`, `upload.completed` (+ `upload`: `id`,
`filename`, `size`, `sha256`), `content.ready`, `content.failed`, `content.deleted`,
`registration.confirmed` (+ `registration`: `id`, `chain`, `contract`, `tx_hash`,
`block_number`, `cid`), `access.purchased` (+ `purchase`: `chain`, `tx_hash`, `log_index`,
`block_number`, `buyer`, `kind`, `token`, `amount`, `fee`, `expires_at`), and `webhook.test`
(`endpoint_id`, `message`). Answer 2xx within 10 s; anything else (redirects included) is
retried with backoff for about a day. Events of one content arrive in order.
"""
SPECTACULAR_SETTINGS = {
    "TITLE": "StreamGate API",
    "DESCRIPTION": "Token-gated video: resumable uploads, an ABR ladder, wallet sign-in, gates."
    + WEBHOOKS_SCHEMA_DESCRIPTION,
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema is public: its views read no credential (so no token scope applies to them).
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two "kind" choice sets (wallets' and offers'): each named, not a hash.
    "ENUM_NAME_OVERRIDES": {"OfferKindEnum": ["purchase", "rental", "membership"]},
}
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
# The JSON API's allowlist; /stream/ answers every origin (apps/access/stream_cors.py).
CORS_URLS_REGEX = r"^/api/.*$"
TUS_HEADERS = [
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-length",
    "upload-offset",
    "upload-metadata",
    "upload-expires",
    "upload-checksum",
    "upload-defer-length",
    "upload-concat",
]
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "origin",
    "user-agent",
    "x-csrftoken",
    "x-requested-with",
    "x-http-method-override",
    "range",
    *TUS_HEADERS,
]
CORS_EXPOSE_HEADERS = [
    "location",
    "content-length",
    "content-range",
    "accept-ranges",
    "retry-after",
    *TUS_HEADERS,
]

# --- Uploads (tus 1.0) -------------------------------------------------------------------------
# Bodies on these paths reach the view as they arrive (streamgate/streaming.py).
STREAMING_BODY_PATHS = [r"^/api/v1/uploads/"]
# A streamed body that stays silent this long ends there (what arrived is kept).
STREAMING_BODY_IDLE_TIMEOUT = env.float("STREAMING_BODY_IDLE_TIMEOUT", default=60.0)
GIB = 1024**3
TUS_MAX_SIZE = env.int("TUS_MAX_SIZE", default=20 * GIB)
# The web UI uploads in PATCHes of this size (reverse proxies often cap request bodies).
WEB_UPLOAD_CHUNK_SIZE = env.int("WEB_UPLOAD_CHUNK_SIZE", default=64 * 1024 * 1024)
TUS_USER_QUOTA = env.int("TUS_USER_QUOTA", default=200 * GIB)
TUS_EXPIRATION_SECONDS = env.int("TUS_EXPIRATION_SECONDS", default=24 * 3600)
TUS_METADATA_MAX_BYTES = 4096
TUS_LOCK_SECONDS = env.int("TUS_LOCK_SECONDS", default=15)
# How long HEAD/PATCH/DELETE wait for a PATCH that still holds the upload (one whose client just
# dropped is committing what it stored) before answering; then 409 "locked" with Retry-After.
TUS_LOCK_WAIT_SECONDS = env.float("TUS_LOCK_WAIT_SECONDS", default=3.0)
TUS_DISK_COMMIT_BYTES = env.int("TUS_DISK_COMMIT_BYTES", default=32 * 1024 * 1024)
TUS_DISK_COMMIT_SECONDS = env.float("TUS_DISK_COMMIT_SECONDS", default=5.0)
# Bearer-authenticated PATCHes appended before Django's stack (apps/access/upload_fast.py).
TUS_FAST_PATCH = env.bool("TUS_FAST_PATCH", default=True)
# Of those, bodies bound for disk of at least this many bytes are moved from the socket to the
# file by the kernel (splice(2), streamgate/streaming.py SocketBody); 0 turns it off.
TUS_SPLICE_MIN_BYTES = env.int("TUS_SPLICE_MIN_BYTES", default=1024 * 1024)
TUS_S3_PART_SIZE = env.int("TUS_S3_PART_SIZE", default=5 * 1024 * 1024)
TUS_BUFFER_DIR = VAR_DIR / "tmp" / "uploads"
UPLOAD_PROGRESS_INTERVAL = 0.25  # at most 4 progress messages a second per upload

# --- Transcoding -------------------------------------------------------------------------------
# The ladder, by short side (1920x1080 and 1080x1920 are both 1080p); rungs above the source's
# are dropped, sizes share one exact shape (see apps/transcode/ladder). x264 encodes each rung at
# constant quality TRANSCODE_CRF under its cap (maxrate, VBV bufsize); a rung's cap is also never
# above TRANSCODE_SOURCE_SHARE of the source's own video bits for that many pixels.
TRANSCODE_LADDER = [
    {"name": "1080p", "height": 1080, "maxrate": 5_000_000, "bufsize": 7_500_000},
    {"name": "720p", "height": 720, "maxrate": 2_800_000, "bufsize": 4_200_000},
    {"name": "480p", "height": 480, "maxrate": 1_400_000, "bufsize": 2_100_000},
    {"name": "360p", "height": 360, "maxrate": 800_000, "bufsize": 1_200_000},
    {"name": "240p", "height": 240, "maxrate": 400_000, "bufsize": 600_000},
]
# x264 constant quality (lower: better, bigger). 24: VMAF 94 on the benchmark's 1080p top rung at
# 0.89x the bytes of the old fixed 5 Mb/s (VMAF 94.8); 23 spent 1.01x for VMAF 94.9.
TRANSCODE_CRF = env.int("TRANSCODE_CRF", default=24)
TRANSCODE_SOURCE_SHARE = env.float("TRANSCODE_SOURCE_SHARE", default=0.75)
TRANSCODE_AUDIO = {"bitrate": 128_000, "sample_rate": 48_000, "channels": 2}  # AAC-LC stereo
TRANSCODE_FFMPEG = env.str("FFMPEG_BINARY", default="")  # else ffmpeg on PATH, else imageio's
TRANSCODE_PRESET = env.str("TRANSCODE_PRESET", default="veryfast")
TRANSCODE_THREADS = env.int("TRANSCODE_THREADS", default=0)  # 0: FFmpeg decides
TRANSCODE_SEGMENT_SECONDS = 4
TRANSCODE_GOP_SECONDS = 2
TRANSCODE_MAX_FPS = 60
TRANSCODE_STORYBOARD = {"interval": 5, "width": 160, "columns": 10, "rows": 10}
TRANSCODE_MAX_ATTEMPTS = env.int("TRANSCODE_MAX_ATTEMPTS", default=3)
TRANSCODE_HEARTBEAT_SECONDS = 5
TRANSCODE_STALE_AFTER_SECONDS = env.int("TRANSCODE_STALE_AFTER_SECONDS", default=60)
# How long a running job waits for the database to come back (a restart, a failover) before it
# gives up and is retried; FFmpeg goes on encoding meanwhile.
TRANSCODE_DATABASE_PATIENCE = env.int("TRANSCODE_DATABASE_PATIENCE", default=120)
# Time limit of a transcode task: this many seconds per second of video, at least the minimum.
TRANSCODE_SECONDS_PER_MEDIA_SECOND = env.float("TRANSCODE_SECONDS_PER_MEDIA_SECOND", default=10)
TRANSCODE_MIN_TIME_LIMIT = 600
# Below the Redis visibility timeout (environment.py), so a long encode is never handed out twice.
TRANSCODE_MAX_TIME_LIMIT = 23 * 3600
TRANSCODE_WORK_DIR = VAR_DIR / "tmp" / "transcode"
TRANSCODE_PROGRESS_INTERVAL = 0.5
# A source longer than this (seconds; 0: never) is encoded in chunks of TRANSCODE_CHUNK_SECONDS
# (a multiple of the segment length), each its own task on the transcode queue, and becomes
# watchable as soon as its first chunk is published (apps/transcode/chunks.py).
TRANSCODE_CHUNK_THRESHOLD_SECONDS = env.int("TRANSCODE_CHUNK_THRESHOLD_SECONDS", default=120)
TRANSCODE_CHUNK_SECONDS = env.int("TRANSCODE_CHUNK_SECONDS", default=60)

# --- Chains and IPFS ---------------------------------------------------------------------------
# {"eip155:1": "https://…", "solana:mainnet": "https://…"}; chains not named have no RPC. A
# value may be a list of providers, the first preferred: {"eip155:1": ["https://a", "https://b"]}.
CHAIN_RPC_URLS = env.json("CHAIN_RPC_URLS", default={})
# {"eip155:137": {"confirmations": 128, "log_range": 2000, "max_base_fee_gwei": 500}}
CHAIN_OVERRIDES = env.json("CHAIN_OVERRIDES", default={})
CHAIN_SIGNER_KEY = read_secret(env, "CHAIN_SIGNER_KEY", default="")
CHAIN_RPC_TIMEOUT = env.float("CHAIN_RPC_TIMEOUT", default=10.0)
CHAIN_STUCK_AFTER_SECONDS = env.int("CHAIN_STUCK_AFTER_SECONDS", default=180)
# A nonce gap (our row ahead of the node's pending count) older than this is healed.
CHAIN_NONCE_GRACE_SECONDS = env.int("CHAIN_NONCE_GRACE_SECONDS", default=60)
# Several providers per chain (a list in CHAIN_RPC_URLS): one more than this many blocks behind
# the best head is skipped; a failed one rests 1, 2, 4… s up to the cooldown; heads are asked
# again when older than the max age (apps/chain/providers.py).
CHAIN_RPC_MAX_LAG_BLOCKS = env.int("CHAIN_RPC_MAX_LAG_BLOCKS", default=5)
CHAIN_RPC_COOLDOWN_SECONDS = env.float("CHAIN_RPC_COOLDOWN_SECONDS", default=30.0)
CHAIN_RPC_HEAD_MAX_AGE_SECONDS = env.float("CHAIN_RPC_HEAD_MAX_AGE_SECONDS", default=5.0)
CHAIN_FEE_BUMP_PERCENT = 15  # nodes want >= 10% more to replace a pending transaction
CHAIN_INDEX_BATCH_SECONDS = 20  # one beat run indexes at most this long per chain
# A registration or pin fails after this many failed steps in a row (or stalls the reaper found);
# one overdue this long is resumed by the reaper (chain-reap).
CHAIN_STEP_MAX_FAILURES = env.int("CHAIN_STEP_MAX_FAILURES", default=8)
CHAIN_REAP_AFTER_SECONDS = env.int("CHAIN_REAP_AFTER_SECONDS", default=600)
IPFS_PINNING_URL = env.str("IPFS_PINNING_URL", default="")
IPFS_PINNING_TOKEN = read_secret(env, "IPFS_PINNING_TOKEN", default="")
IPFS_POLL_SECONDS = env.float("IPFS_POLL_SECONDS", default=30.0)

# --- Access: wallet sign-in, gates, playback ---------------------------------------------------
# The site's public origin. Sign-in messages must name its host and scheme, and their URI must be
# on it; it comes from here, never from a request's Host header.
STREAMGATE_PUBLIC_URL = env.str(
    "STREAMGATE_PUBLIC_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}"
).rstrip("/")
# EVM chain ids a SIWE message may name; empty: the well-known chains plus those in
# CHAIN_RPC_URLS (apps.access.services.signin_policy).
SIGNIN_EVM_CHAIN_IDS = env.list("SIGNIN_EVM_CHAIN_IDS", cast=int, default=[])
SIGNIN_SOLANA_CHAINS = env.list("SIGNIN_SOLANA_CHAINS", default=["solana:mainnet", "solana:devnet"])
SIGNIN_NONCE_TTL = env.int("SIGNIN_NONCE_TTL", default=300)
SIGNIN_MESSAGE_MAX_AGE = env.int("SIGNIN_MESSAGE_MAX_AGE", default=600)
SIGNIN_CLOCK_SKEW = env.int("SIGNIN_CLOCK_SKEW", default=60)
SIGNIN_MESSAGE_MAX_LENGTH = env.int("SIGNIN_MESSAGE_MAX_LENGTH", default=2048)
SIGNIN_TOKEN_TTL = env.int("SIGNIN_TOKEN_TTL", default=7 * 24 * 3600)
SIGNIN_COOKIE = "sg_signin"
# Ownership answers: how long a "holds" and a "does not hold" stay cached (the indexer's transfer
# hook drops them sooner), and how long a viewer waits for the chains.
GATE_CACHE_POSITIVE_TTL = env.int("GATE_CACHE_POSITIVE_TTL", default=300)
GATE_CACHE_NEGATIVE_TTL = env.int("GATE_CACHE_NEGATIVE_TTL", default=30)
GATE_RPC_TIMEOUT = env.float("GATE_RPC_TIMEOUT", default=3.0)
GATE_EVALUATION_TIMEOUT = env.float("GATE_EVALUATION_TIMEOUT", default=6.0)
# {"k2": "<secret>", "k1": "<old secret>"}: HMAC keys of playback tokens by id; new tokens use
# PLAYBACK_KEY_ID, the others stay valid until their tokens expire. Empty: one key derived from
# SECRET_KEY.
PLAYBACK_KEYS = read_secret_json(env, "PLAYBACK_KEYS", default={})
PLAYBACK_KEY_ID = env.str("PLAYBACK_KEY_ID", default="")
# Media encryption (apps/transcode/keys.py): {"m2": "<base64 of 32 bytes>", "m1": "<old>"} wraps
# every content key; new wraps use MEDIA_MASTER_KEY_ID, `manage.py media_keys_rewrap` moves the
# old ones over. Empty: one key derived from SECRET_KEY. Every new encode is encrypted (public
# segments, gated keys: README "Encrypted delivery"); MEDIA_ENCRYPTION=0 publishes clear media
# behind the token path instead, as before encryption existed.
MEDIA_MASTER_KEYS = read_secret_json(env, "MEDIA_MASTER_KEYS", default={})
MEDIA_MASTER_KEY_ID = env.str("MEDIA_MASTER_KEY_ID", default="")
MEDIA_ENCRYPTION = env.bool("MEDIA_ENCRYPTION", default=True)
# Where players fetch the public, encrypted files (storage prefix "public/"): this site's /public/
# (nginx in deploy/nginx, or the app itself), or a CDN or bucket URL ending in "/".
PUBLIC_MEDIA_URL = env.str("PUBLIC_MEDIA_URL", default="/public/")
# A token lives long enough to watch the whole content once, plus this, within the maximum.
PLAYBACK_TOKEN_TTL = env.int("PLAYBACK_TOKEN_TTL", default=900)
PLAYBACK_TOKEN_MAX_TTL = env.int("PLAYBACK_TOKEN_MAX_TTL", default=6 * 3600)
# Views (apps/access/audience.py): one per viewer per content per VIEW_WINDOW_SECONDS; at most
# VIEWS_PER_ADDRESS anonymous viewers of a content per client address per window; a playback
# grant's beacons count until VIEW_SESSION_MAX_AGE after it; the rollup every
# VIEW_ROLLUP_SECONDS brings them to the API's ``views``.
VIEW_WINDOW_SECONDS = env.int("VIEW_WINDOW_SECONDS", default=30 * 60)
VIEWS_PER_ADDRESS = env.int("VIEWS_PER_ADDRESS", default=10)
VIEW_SESSION_MAX_AGE = env.int("VIEW_SESSION_MAX_AGE", default=8 * 3600)
VIEW_ROLLUP_SECONDS = env.float("VIEW_ROLLUP_SECONDS", default=60)
VIEWER_COOKIE = "sg_viewer"
# Set to an internal nginx location (e.g. "/protected/") to answer stream requests with
# X-Accel-Redirect to <prefix><storage path> and let nginx send the bytes.
STREAM_ACCEL_REDIRECT = env.str("STREAM_ACCEL_REDIRECT", default="")
STREAM_PRESIGN_SECONDS = env.int("STREAM_PRESIGN_SECONDS", default=120)
# Where players fetch media besides this site: the S3 endpoint of presigned URLs (CSP).
STREAM_MEDIA_ORIGINS = env.list(
    "STREAM_MEDIA_ORIGINS",
    default=(
        [urlsplit(S3_ENDPOINT_URL)._replace(path="", query="", fragment="").geturl()]
        if S3_ENDPOINT_URL
        else (["https://*.amazonaws.com"] if S3_BUCKET else [])
    )
    # A CDN or bucket serving the public encrypted files.
    + (
        [urlsplit(PUBLIC_MEDIA_URL)._replace(path="", query="", fragment="").geturl()]
        if PUBLIC_MEDIA_URL.startswith(("https://", "http://"))
        else []
    ),
)
# Who may frame the embeddable player (CSP frame-ancestors); "*" is any site.
EMBED_FRAME_ANCESTORS = env.str("EMBED_FRAME_ANCESTORS", default="*")
SECURE_REFERRER_POLICY = "same-origin"
# Password sign-in (the sign-in page, the admin): this many failures for one account, or from one
# client address, lock it out until this many seconds pass without another try (django-axes,
# apps/access/password_throttle.py). ADMIN_LOGIN_* are the former names, still read.
PASSWORD_SIGNIN_FAILURES = env.int(
    "PASSWORD_SIGNIN_FAILURES", default=env.int("ADMIN_LOGIN_FAILURES", default=10)
)
PASSWORD_SIGNIN_WINDOW = env.int(
    "PASSWORD_SIGNIN_WINDOW", default=env.int("ADMIN_LOGIN_WINDOW", default=900)
)
AXES_FAILURE_LIMIT = PASSWORD_SIGNIN_FAILURES
AXES_COOLOFF_TIME = timedelta(seconds=PASSWORD_SIGNIN_WINDOW)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_USERNAME_CALLABLE = "apps.access.password_throttle.username_key"
AXES_CLIENT_IP_CALLABLE = "streamgate.client_address.request_client_address"
AXES_LOCKOUT_CALLABLE = "apps.access.password_throttle.lockout_response"
# A success does not clear the count: any wallet sign-in would otherwise reset its address's.
AXES_RESET_ON_SUCCESS = False
AXES_DISABLE_ACCESS_LOG = True  # no row per successful sign-in (wallet sign-ins are many)
AXES_VERBOSE = False  # no banner on every manage.py command; failures are still logged
# Reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the client; empty: the socket
# peer is the client (streamgate/client_address.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# Audit trail rows (apps/content/audit.py) older than this many days are purged hourly; 0 keeps
# them forever.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
STREAM_MEMORY_LIMIT = 16 * 1024 * 1024  # files up to this size are sent in one piece
# Webhooks (apps/content/webhooks, README "Webhooks"). Endpoints must be public addresses,
# checked at every attempt after DNS resolution; WEBHOOK_ALLOW_PRIVATE=1 lifts that for local
# development, WEBHOOK_ALLOWED_NETWORKS allows chosen private networks (an internal relay).
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])
networks_parse(WEBHOOK_ALLOWED_NETWORKS, name="WEBHOOK_ALLOWED_NETWORKS")
# DNS servers ("address" or "address:port") endpoints' names are resolved with; empty: the
# system's resolver.
WEBHOOK_DNS_NAMESERVERS = env.list("WEBHOOK_DNS_NAMESERVERS", default=[])
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=5.0)
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)  # the whole attempt
# Seconds before each retry (then jittered by +-WEBHOOK_RETRY_JITTER): 8 attempts over ~28 h.
WEBHOOK_RETRY_SCHEDULE = [
    float(value)
    for value in env.list(
        "WEBHOOK_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000", "36000", "36000"]
    )
]
WEBHOOK_RETRY_JITTER = env.float("WEBHOOK_RETRY_JITTER", default=0.2)
# An endpoint whose attempts all failed for this long is disabled and its owner emailed.
WEBHOOK_DISABLE_AFTER_DAYS = env.float("WEBHOOK_DISABLE_AFTER_DAYS", default=5)
# After a rotation the old secret signs beside the new one for this long.
WEBHOOK_SECRET_OVERLAP_HOURS = env.float("WEBHOOK_SECRET_OVERLAP_HOURS", default=24)
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=30)  # finished deliveries
WEBHOOK_ENDPOINTS_PER_USER = env.int("WEBHOOK_ENDPOINTS_PER_USER", default=20)
# Beat looks for due deliveries nobody is working this often (retries past a minute, lost tasks).
WEBHOOK_SWEEP_SECONDS = env.float("WEBHOOK_SWEEP_SECONDS", default=10)
WEBHOOK_PUMP_SECONDS = env.float("WEBHOOK_PUMP_SECONDS", default=60)  # one pump task's turn
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="StreamGate <noreply@localhost>")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)

# --- Celery (read by streamgate/celery.py with namespace="CELERY") -----------------------------
_broker = celery_broker_config(REDIS_URL, VAR_DIR / "celery")
CELERY_BROKER_URL = _broker["broker_url"]
CELERY_BROKER_TRANSPORT = _broker["broker_transport"]
CELERY_BROKER_TRANSPORT_OPTIONS = _broker["broker_transport_options"]
CELERY_RESULT_BACKEND = _broker["result_backend"]
# A task's result written on a connection Redis dropped meanwhile is retried (a new connection),
# not turned into a failure of a task whose work is done; bounded, backing off up to 10 s.
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 12
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Workers log through LOGGING above (JSON, request ids), not Celery's own root handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Tasks sent while the broker was away wait in the outbox (apps/content/outbox.py); the relay
# sends those older than the grace (which leaves the sender's own attempt alone) every
# OUTBOX_RELAY_SECONDS. Beat needs the broker too, so the first relay runs within grace +
# period of its return.
OUTBOX_GRACE_SECONDS = env.int("OUTBOX_GRACE_SECONDS", default=10)
OUTBOX_RELAY_SECONDS = env.float("OUTBOX_RELAY_SECONDS", default=20)
CELERY_BEAT_SCHEDULE = {
    "outbox-relay": {"task": "apps.content.tasks.outbox_relay", "schedule": OUTBOX_RELAY_SECONDS},
    "uploads-reap": {"task": "apps.uploads.tasks.uploads_reap", "schedule": 120},
    "transcode-reap": {"task": "apps.transcode.tasks.transcode_reap", "schedule": 60},
    "chain-index": {"task": "apps.chain.tasks.chain_index_all", "schedule": 15},
    "chain-gas": {"task": "apps.chain.tasks.chain_gas_sample_all", "schedule": 60},
    "chain-reap": {"task": "apps.chain.tasks.chain_reap", "schedule": 60},
    "access-prune": {"task": "apps.access.tasks.access_prune", "schedule": 3600},
    "audit-purge": {"task": "apps.content.tasks.audit_purge", "schedule": 3600},
    "webhooks-dispatch": {
        "task": "apps.content.webhooks.tasks.webhooks_dispatch",
        "schedule": WEBHOOK_SWEEP_SECONDS,
    },
    "webhooks-purge": {"task": "apps.content.webhooks.tasks.webhooks_purge", "schedule": 3600},
    "views-rollup": {"task": "apps.access.tasks.views_rollup", "schedule": VIEW_ROLLUP_SECONDS},
}

# --- Observability -----------------------------------------------------------------------------
SENTRY_DSN = read_secret(env, "SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="local")
STREAMGATE_RELEASE = env.str("STREAMGATE_RELEASE", default="streamgate@dev")
PROMETHEUS_EXPORT_MIGRATIONS = False
# /metrics answers these addresses (or networks) and "Authorization: Bearer <METRICS_TOKEN>";
# with neither, nobody (streamgate/metrics_access.py).
METRICS_TOKEN = read_secret(env, "METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
networks_parse(METRICS_ALLOWED_IPS, name="METRICS_ALLOWED_IPS")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")  # json | plain
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "streamgate.observability.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "streamgate.observability.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own logging config gives "django" a console handler while DEBUG is on (and
        # mail_admins); its records then reached stderr twice, once through it and once through
        # root. Root's handler alone writes them.
        "django": {"handlers": [], "propagate": True},
        "django.db.backends": {"level": "INFO"},
    },
}

if SENTRY_DSN:
    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, release=STREAMGATE_RELEASE)
