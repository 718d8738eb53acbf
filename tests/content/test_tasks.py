import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.content.storage import storage_delete_prefix
from apps.content.tasks import content_files_delete

CONTENT_ID = "3f1c2a9e-8c1d-4d55-9d55-6b1f0c3f0a11"
OTHER_ID = "0b6c3a1e-1111-4d55-9d55-6b1f0c3f0a22"


def put(path: str, data: bytes = b"x") -> None:
    default_storage.save(path, ContentFile(data))


def run_task(*args):
    """Run the task body with arguments round-tripped through JSON, as the broker does."""
    return content_files_delete.run(*json.loads(json.dumps(args)))


def seed() -> None:
    put(f"sources/{CONTENT_ID}/original.mp4")
    put(f"renditions/{CONTENT_ID}/job1/master.m3u8")
    put(f"renditions/{CONTENT_ID}/job1/v0/chunk-1.m4s")
    put(f"sources/{OTHER_ID}/original.mp4")


def test_files_delete_on_disk_removes_only_that_content(media_root):
    seed()
    assert run_task(CONTENT_ID) == 3
    assert not (media_root / "sources" / CONTENT_ID).exists()
    assert not (media_root / "renditions" / CONTENT_ID).exists()
    assert (media_root / "sources" / OTHER_ID / "original.mp4").exists()
    # Idempotent: a second run (a redelivery) finds nothing and does not fail.
    assert run_task(CONTENT_ID) == 0


def test_files_delete_on_s3_removes_only_that_content(s3_storage):
    seed()
    assert run_task(CONTENT_ID) == 3
    keys = sorted(obj.key for obj in s3_storage.objects.all())
    assert keys == [f"sources/{OTHER_ID}/original.mp4"]
    assert run_task(CONTENT_ID) == 0


@pytest.mark.parametrize("prefix", ["", "/", "sources", "/etc/", "sources/../", "../x/"])
def test_unsafe_prefixes_are_refused(prefix, media_root):
    put(f"sources/{OTHER_ID}/original.mp4")
    with pytest.raises(ValueError, match="unsafe prefix"):
        storage_delete_prefix(prefix)
    assert (media_root / "sources" / OTHER_ID / "original.mp4").exists()
