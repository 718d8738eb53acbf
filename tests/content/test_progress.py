"""One forward-only progress across phases (apps/content/progress.py and the services that store
it), the fields the studio reads from a content's JSON, and the versioned poster URL."""

import pytest

from apps.content.models import Content, ContentStatus
from apps.content.progress import PHASE_SPANS, overall_percent, phase_label
from apps.content.services import content_progress_set, content_status_set
from apps.content.status import ErrorKind
from tests.factories import ContentFactory

pytestmark = pytest.mark.django_db


def test_the_phases_cover_the_scale_in_order_without_gaps():
    spans = list(PHASE_SPANS.values())
    assert spans[0][0] == 0
    assert spans[-1] == (100, 100)
    for (_, end), (start, _) in zip(spans[:-2], spans[1:-1], strict=True):
        assert end == start
    values = [overall_percent(phase, p) for phase in list(PHASE_SPANS)[:-1] for p in (0, 50, 100)]
    assert values == sorted(values)
    assert overall_percent("encode", 250) == PHASE_SPANS["encode"][1]  # clamped
    assert overall_percent("upload", -5) == 0


def test_labels_are_plain_words():
    assert phase_label("upload") == "Uploading"
    assert phase_label("queued") == "Waiting for an encoder"
    assert phase_label("encode", rung="720p") == "Encoding 720p"
    assert phase_label("package") == "Preparing for streaming"
    assert phase_label("ready") == "Ready"
    assert phase_label("encode", rung="720p", retrying=True) == "Retrying: encoding 720p"
    assert phase_label("failed", retrying=True) == "Failed"


def test_progress_never_goes_down_within_an_attempt_and_restarts_with_a_new_one():
    content = ContentFactory(status=ContentStatus.UPLOADING)
    content_progress_set(content_id=content.id, progress=50, overall=15)
    content_progress_set(content_id=content.id, progress=10, overall=3)  # a late, lower report
    assert Content.objects.get(pk=content.pk).overall_progress == 15
    content_status_set(content=content, status=ContentStatus.QUEUED)
    assert content.overall_progress == 30
    content_status_set(content=content, status=ContentStatus.PROCESSING)
    assert content.overall_progress == 32
    content_progress_set(content_id=content.id, progress=40, overall=60)
    content_status_set(content=content, status=ContentStatus.PROCESSING)  # a restart's status
    assert content.overall_progress == 60  # processing never lowers it
    content_status_set(content=content, status=ContentStatus.FAILED, error="Encoder stopped.")
    assert content.overall_progress == 60
    content_status_set(content=content, status=ContentStatus.QUEUED, restarting=True)
    assert Content.objects.get(pk=content.pk).overall_progress == 30  # a retry starts again
    content_status_set(content=content, status=ContentStatus.READY)
    assert Content.objects.get(pk=content.pk).overall_progress == 100


def test_the_json_says_whether_a_retry_can_help(client_for):
    bad_file = ContentFactory(
        status=ContentStatus.FAILED,
        error="This file is not a video we can read.",
        error_kind=ErrorKind.SOURCE,
        source_path="sources/x/a.txt",
    )
    encoder = ContentFactory(
        status=ContentStatus.FAILED,
        error="Encoding failed.",
        error_kind=ErrorKind.PROCESSING,
        source_path="sources/y/a.mp4",
        owner=bad_file.owner,
    )
    client = client_for(bad_file.owner)
    body = client.get(f"/api/v1/contents/{bad_file.id}/").json()
    assert (body["retryable"], body["error_kind"], body["overall_progress"]) == (
        False,
        "source",
        0,
    )
    assert client.get(f"/api/v1/contents/{encoder.id}/").json()["retryable"] is True
    refused = client.post(f"/api/v1/contents/{bad_file.id}/retry/")
    assert refused.status_code == 409
    assert refused.json()["reason"] == "not_retryable"
    assert client.post(f"/api/v1/contents/{encoder.id}/retry/").status_code == 202
    # A status change clears the kind: the retried content is no longer failed.
    assert Content.objects.get(pk=encoder.pk).error_kind == ""


def test_the_poster_url_carries_the_posters_version(client_for):
    content = ContentFactory(status=ContentStatus.READY, poster="renditions/x/job/poster.jpg")
    client = client_for(content.owner)
    first = client.get(f"/api/v1/contents/{content.id}/").json()["thumbnail_url"]
    assert f"/posters/{content.id}.jpg?v=" in first
    Content.objects.filter(pk=content.pk).update(poster="renditions/x/posters/b.jpg")
    second = client.get(f"/api/v1/contents/{content.id}/").json()["thumbnail_url"]
    assert second != first  # the cached answer moved with the row
