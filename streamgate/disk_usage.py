"""Free and total bytes of the local filesystems StreamGate writes to, read at scrape time.

In the embedded mode (``make run``: no S3 bucket, SQLite) the media, the database and the
uploads' and encodes' scratch folders live on local disk, and a full disk stops uploads (503) and
encodes: the ``DiskNearlyFull`` alert (deploy/prometheus/alerts.yml) fires before that. Each
volume is measured where the path is, or at its nearest existing parent (a folder made on first
use). With S3 and PostgreSQL only the scratch folder remains local; the database's and the
bucket's space are their own servers' concern.
"""

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)


def local_volumes() -> dict[str, Path]:
    """Volume name -> a path on it: ``media`` (FileSystemStorage only), ``database`` (SQLite
    files only) and ``scratch`` (where uploads are buffered and encodes work)."""
    volumes: dict[str, Path] = {}
    if isinstance(default_storage, FileSystemStorage):
        volumes["media"] = Path(default_storage.location)
    database = settings.DATABASES["default"]
    name = str(database.get("NAME") or "")
    if "sqlite" in database["ENGINE"] and name and not name.startswith((":memory:", "file:")):
        volumes["database"] = Path(name).parent
    volumes["scratch"] = Path(settings.TUS_BUFFER_DIR)
    return volumes


def _existing(path: Path) -> Path:
    """``path`` or its nearest parent that exists (a folder made on first use)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_usage_metrics() -> Iterator[GaugeMetricFamily]:
    """``streamgate_disk_free_bytes`` and ``streamgate_disk_size_bytes`` by volume. Free is what
    an unprivileged process may still write (root's reserve excluded), as ``df`` shows it."""
    free = GaugeMetricFamily(
        "streamgate_disk_free_bytes",
        "Bytes an unprivileged process can still write on the filesystem of a local volume.",
        labels=["volume"],
    )
    size = GaugeMetricFamily(
        "streamgate_disk_size_bytes", "Size of the filesystem of a local volume.", labels=["volume"]
    )
    for volume, path in local_volumes().items():
        try:
            usage = shutil.disk_usage(_existing(path))
        except OSError as error:  # a mount that went away: no sample rather than a failed page
            logger.warning("disk usage unavailable", extra={"volume": volume, "error": repr(error)})
            continue
        free.add_metric([volume], usage.free)
        size.add_metric([volume], usage.total)
    yield free
    yield size
