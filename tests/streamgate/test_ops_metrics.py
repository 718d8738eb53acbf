"""Series the alerts need that no request makes: beat's heartbeat (BeatNotRunning) and the local
disks' free space (DiskNearlyFull), read at scrape time."""

import logging
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from streamgate.beat_heartbeat import beat_heartbeat_metrics, beat_heartbeat_record
from streamgate.disk_usage import disk_usage_metrics, local_volumes
from streamgate.settings.environment import cache_config
from tests.support.processes import BIN, embedded_env, spawned

BEAT = "streamgate_beat_last_run_timestamp_seconds"
MIB = 1024 * 1024


def metric_values(page: str, name: str) -> dict[str, float]:
    """Label text (``volume="media"``, or "" for none) -> value, for ``name``'s samples."""
    found = re.findall(rf"^{name}(?:{{([^}}]*)}})? (\S+)$", page, re.M)
    return {labels: float(value) for labels, value in found}


def wait_for(read, predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.mark.django_db
def test_beat_writes_its_heartbeat_and_metrics_show_it(client, settings, tmp_path, logs_dir):
    """A real beat of the embedded mode (`make run`: the file cache, the filesystem broker) and
    /metrics reading the same cache folder: no heartbeat before beat runs (BeatNotRunning fires
    on the missing series), then beat's time, moving on with each task it sends."""
    var = tmp_path / "var"
    settings.CACHES = cache_config("", var / "cache")  # what the embedded web process reads
    env = embedded_env(var, OUTBOX_RELAY_SECONDS="0.5")

    def heartbeat() -> dict[str, float]:
        return metric_values(client.get("/metrics").content.decode(), BEAT)

    page = client.get("/metrics").content.decode()
    assert f"# TYPE {BEAT} gauge" in page
    assert metric_values(page, BEAT) == {}
    started = time.time()
    beat = [str(BIN / "celery"), "--app", "streamgate", "beat", "--loglevel", "INFO"]
    with spawned(beat, env=env, log=logs_dir / "beat.log"):
        first = wait_for(heartbeat, bool)
        assert first, (logs_dir / "beat.log").read_text()[-2000:]
        assert started - 1 <= first[""] <= time.time()
        # The outbox relay, sent every 0.5 s, moves it on.
        later = wait_for(heartbeat, lambda values: values[""] > first[""])
        assert later[""] > first[""]
    assert "Sending due task outbox-relay" in (logs_dir / "beat.log").read_text()


def test_the_embedded_mode_measures_media_database_and_scratch(settings, tmp_path):
    """SQLite and local media (`make run`): three volumes; PostgreSQL and S3: scratch alone."""
    # Only read here (no connection is made), which Django's warning is about.
    with pytest.warns(UserWarning, match="Overriding setting DATABASES"):
        settings.DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(tmp_path / "db.sqlite3"),
            }
        }
    assert local_volumes() == {
        "media": Path(settings.STORAGES["default"]["OPTIONS"]["location"]),
        "database": tmp_path,
        "scratch": Path(settings.TUS_BUFFER_DIR),
    }
    free, size = disk_usage_metrics()
    assert [s.labels["volume"] for s in free.samples] == ["media", "database", "scratch"]
    assert all(s.value > 0 for s in free.samples + size.samples)


def test_with_postgresql_and_s3_only_the_scratch_folder_is_local(settings, s3_storage):
    assert local_volumes() == {"scratch": Path(settings.TUS_BUFFER_DIR)}


@pytest.fixture
def cache_away(settings):
    """Redis as the cache, on a port where nothing listens."""
    settings.CACHES = cache_config("redis://127.0.0.1:9/0", settings.VAR_DIR / "cache")


@pytest.mark.django_db
@pytest.mark.usefixtures("cache_away")
def test_a_cache_that_is_away_neither_stops_beat_nor_the_metrics_page(client, caplog):
    with caplog.at_level(logging.WARNING, logger="streamgate.beat_heartbeat"):
        beat_heartbeat_record()  # beat goes on
        (gauge,) = beat_heartbeat_metrics()
    assert gauge.name == BEAT
    assert gauge.samples == []  # no heartbeat read: the alert's absent() branch
    assert [r.message for r in caplog.records if r.name == "streamgate.beat_heartbeat"] == [
        "beat heartbeat not recorded",
        "beat heartbeat unavailable",
    ]
    response = client.get("/metrics")
    assert response.status_code == 200
    assert metric_values(response.content.decode(), BEAT) == {}


@pytest.mark.django_db
def test_a_recorded_heartbeat_is_on_the_metrics_page(client):
    beat_heartbeat_record(now=1_700_000_000.5)
    page = client.get("/metrics").content.decode()
    assert metric_values(page, BEAT) == {"": 1_700_000_000.5}


@pytest.mark.django_db
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_the_media_disk_is_measured_on_its_own_filesystem(client, settings, tmp_path):
    """A 4 MiB tmpfs as the media root: its size, and its free bytes going down as it fills."""
    media = tmp_path / "media"
    media.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(media)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(media / "not-made-yet"), "base_url": "/media/"},
            },
        }
        page = client.get("/metrics").content.decode()
        assert metric_values(page, "streamgate_disk_size_bytes")['volume="media"'] == 4 * MIB
        free = metric_values(page, "streamgate_disk_free_bytes")['volume="media"']
        assert free == 4 * MIB
        (media / "filler").write_bytes(b"x" * 3 * MIB)
        page = client.get("/metrics").content.decode()
        assert metric_values(page, "streamgate_disk_free_bytes")['volume="media"'] == MIB
        # Another filesystem than the scratch folder's.
        assert metric_values(page, "streamgate_disk_size_bytes")['volume="scratch"'] != 4 * MIB
    finally:
        subprocess.run(["umount", "-l", str(media)], check=False, timeout=30)


@pytest.mark.django_db
def test_a_volume_that_cannot_be_measured_is_left_out_and_the_page_answers(
    client, settings, caplog, tmp_path
):
    """A media root whose path the kernel refuses (a name over 255 bytes): no media sample, a
    warning, the other volumes still there."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / ("m" * 300)), "base_url": "/media/"},
        },
    }
    with caplog.at_level(logging.WARNING, logger="streamgate.disk_usage"):
        response = client.get("/metrics")
    assert response.status_code == 200
    free = metric_values(response.content.decode(), "streamgate_disk_free_bytes")
    assert 'volume="media"' not in free
    assert 'volume="scratch"' in free
    assert any(r.message == "disk usage unavailable" for r in caplog.records)
