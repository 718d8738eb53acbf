"""Turn environment values into Django, Celery and Channels configuration.

Each function takes plain values and returns plain dicts so that the choice between embedded
defaults and real services is made in one place and can be tested without importing settings.
"""

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ

EMBEDDED_CACHE = "django_prometheus.cache.backends.filebased.FileBasedCache"
REDIS_CACHE = "django_prometheus.cache.backends.redis.RedisCache"
FILESYSTEM_CHANNEL_LAYER = "streamgate.channel_layers.FilesystemChannelLayer"
REDIS_CHANNEL_LAYER = "channels_redis.core.RedisChannelLayer"

# The longest transcode we allow (TRANSCODE_MAX_TIME_LIMIT) must finish before Redis redelivers
# its unacknowledged message to another worker, or a slow encode would run twice. A worker that
# dies is noticed sooner by the transcode reaper (heartbeats), not by this timeout.
REDIS_VISIBILITY_TIMEOUT = 24 * 3600

_PROMETHEUS_ENGINES = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks_parse(values: Iterable[str], *, name: str) -> tuple[Network, ...]:
    """Addresses or CIDR networks as networks; a value that is neither stops startup with the
    setting's name and the value."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                f"{name}: {value!r} is not an IP address or network (e.g. 10.0.0.0/8)."
            ) from None
    return tuple(networks)


def read_secret(env: environ.Env, name: str, default: Any) -> Any:
    """Read a secret from NAME, or from the file named by NAME_FILE (Docker secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


def read_secret_json(env: environ.Env, name: str, default: Any) -> Any:
    """A JSON secret from NAME or NAME_FILE; a value that is not JSON stops startup with its
    name (never its content)."""
    import json

    from django.core.exceptions import ImproperlyConfigured

    text = read_secret(env, name, default="")
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be JSON.") from None


def database_config(
    url: str,
    *,
    conn_max_age: int,
    wait_seconds: float = 2.0,
    idle_in_transaction_seconds: int = 60,
) -> dict[str, Any]:
    """A DATABASES entry for the URL, instrumented for Prometheus. ``wait_seconds``: how long
    a web request waits for a pooled connection, and for each answer (streamgate/database.py).
    ``idle_in_transaction_seconds``: how long PostgreSQL keeps a session that sits in a
    transaction without a query (0: for ever)."""
    config = environ.Env.db_url_config(url)
    config["ENGINE"] = _PROMETHEUS_ENGINES.get(config["ENGINE"], config["ENGINE"])
    config["CONN_MAX_AGE"] = conn_max_age
    config["CONN_HEALTH_CHECKS"] = True
    options = config.setdefault("OPTIONS", {})
    if config["ENGINE"].endswith("sqlite3"):
        # The web process and the worker write to one file: WAL lets readers go on during a
        # write, IMMEDIATE transactions take the write lock up front instead of failing midway.
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        options.setdefault("timeout", 20)
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    else:
        options.setdefault("connect_timeout", 5)
        if idle_in_transaction_seconds:
            # A transaction whose client is gone without the server hearing of it (a firewall
            # or load balancer that dropped the flow, a host that vanished) would otherwise hold
            # its locks until TCP keepalives notice (hours) or for ever: every request for the
            # locked rows answering 503, every task waiting on them stuck. The server ends such a
            # session instead; our own transactions never sit idle that long (no network call
            # or file copy inside one).
            bound = f"-c idle_in_transaction_session_timeout={idle_in_transaction_seconds * 1000}"
            options["options"] = f"{options.get('options', '')} {bound}".strip()
        if conn_max_age == 0:
            from streamgate.database import BoundedConnection

            # A connection pool (psycopg_pool) instead of a new connection per request: under
            # ASGI each request runs in its own thread, so persistent connections don't apply.
            # A request waits ``wait_seconds`` for a connection, then answers 503. While the
            # server is away the pool retries with a doubling delay; it gives up after
            # ``reconnect_timeout`` and the next request starts a fresh attempt, so a server
            # that is back is found within seconds (the default, 5 min, left pools waiting
            # half a minute after an outage of one).
            options.setdefault(
                "pool",
                {
                    "min_size": 2,
                    "max_size": 20,
                    "timeout": wait_seconds,
                    "reconnect_timeout": 4,
                    "connection_class": BoundedConnection,
                },
            )
    return config


def cache_config(redis_url: str, folder: Path) -> dict[str, Any]:
    """Redis through django-redis when REDIS_URL is set, else files under ``folder``.

    Not a per-process memory cache: the worker invalidates entries (ownership answers) that the
    web process reads, so both must see one cache.
    """
    if not redis_url:
        return {"default": {"BACKEND": EMBEDDED_CACHE, "LOCATION": str(folder)}}
    options: dict[str, Any] = {
        "CLIENT_CLASS": "django_redis.client.DefaultClient",
        "SOCKET_CONNECT_TIMEOUT": 2,
        "SOCKET_TIMEOUT": 2,
    }
    if urlsplit(redis_url).scheme == "redis":  # TLS (rediss://) keeps redis-py's own class
        from streamgate.breaker import BreakerConnection

        # While Redis is away, cache calls fail at once instead of each waiting 2 s.
        options["CONNECTION_POOL_KWARGS"] = {"connection_class": BreakerConnection}
    return {
        "default": {
            "BACKEND": REDIS_CACHE,
            "LOCATION": redis_url,
            "KEY_PREFIX": "sg",
            "OPTIONS": options,
        }
    }


CHANNEL_LAYER_CONNECTIONS = 2000


def channel_layer_config(redis_url: str, folder: Path) -> dict[str, Any]:
    """channels-redis when REDIS_URL is set, else the cross-process filesystem layer."""
    if redis_url:
        return {
            "default": {
                "BACKEND": REDIS_CHANNEL_LAYER,
                "CONFIG": {
                    # redis-py 8 caps a pool at 100 connections and then fails at once; a
                    # burst of websocket connects or disconnects each holds one briefly.
                    # A Redis that stops answering must not hold a call for ever; reads wait
                    # longer than the 5 s that channels-redis blocks in BZPOPMIN for messages.
                    "hosts": [
                        {
                            "address": redis_url,
                            "max_connections": CHANNEL_LAYER_CONNECTIONS,
                            "socket_connect_timeout": 2,
                            "socket_timeout": 10,
                        }
                    ],
                    "prefix": "sg-asgi",
                    "capacity": 1000,
                },
            }
        }
    return {"default": {"BACKEND": FILESYSTEM_CHANNEL_LAYER, "CONFIG": {"root": str(folder)}}}


def celery_broker_config(redis_url: str, folder: Path) -> dict[str, Any]:
    """Redis as broker and result backend, or kombu's filesystem transport under ``folder``.

    The filesystem transport needs no server, survives restarts (messages are files) and carries
    tasks between separate web and worker processes, which an in-memory transport cannot.
    """
    if redis_url:
        return {
            "broker_url": redis_url,
            # kombu's Redis transport with a fix that keeps a Redis outage from stopping the
            # worker (streamgate/broker.py); other schemes (rediss, sentinel) keep kombu's own.
            "broker_transport": (
                "streamgate.broker:Transport" if redis_url.startswith("redis://") else None
            ),
            "broker_transport_options": {
                "visibility_timeout": REDIS_VISIBILITY_TIMEOUT,
                "socket_connect_timeout": 3,
                "socket_timeout": 10,
                # A consumer whose connection died silently notices within ~20 s (kombu's
                # default, 25, leaves it deaf for up to 51 s after a short outage).
                "health_check_interval": 10,
            },
            "result_backend": redis_url,
        }
    messages = folder / "messages"
    for sub in (messages, folder / "control", folder / "results"):
        sub.mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": "filesystem://",
        "broker_transport": None,
        "broker_transport_options": {
            "data_folder_in": str(messages),
            "data_folder_out": str(messages),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        },
        "result_backend": f"file://{folder / 'results'}",
    }


def storages_config(
    *,
    bucket: str,
    endpoint_url: str,
    access_key: str,
    secret_key: str,
    region: str,
    media_root: Path,
) -> dict[str, Any]:
    """The STORAGES setting: S3 (django-storages) when a bucket is named, else local disk."""
    staticfiles = {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}
    if not bucket:
        return {
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(media_root), "base_url": "/media/"},
            },
            "staticfiles": staticfiles,
        }
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "region_name": region,
        "default_acl": None,
        "file_overwrite": True,
        "querystring_auth": True,
        "querystring_expire": 300,
        "signature_version": "s3v4",
    }
    if endpoint_url:
        # MinIO and other S3-compatible servers want path-style addressing.
        options["endpoint_url"] = endpoint_url
        options["addressing_style"] = "path"
    if access_key:
        options["access_key"] = access_key
        options["secret_key"] = secret_key
    return {
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
        "staticfiles": staticfiles,
    }


def sentry_init(*, dsn: str, environment: str, release: str) -> None:
    """Turn on sentry-sdk for Django, Celery and Redis; personal data stays off."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.redis import RedisIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        send_default_pii=False,
        traces_sample_rate=0.0,
        integrations=[DjangoIntegration(), CeleryIntegration(), RedisIntegration()],
    )
