"""Encrypted delivery of a job's outputs: encrypt, publish to the public prefix, keep the keys.

A job's worker encrypts its package before publishing (``package_encrypt``, from the local
folder); ``job_encrypt`` does the same for a job published before encryption existed, from
storage (``manage.py encrypt_contents``): no re-encode, the same CMAF segments re-packaged. Once a
job is encrypted, its clear media leave the token path's folder: only the manifests, poster and
storyboard stay there (the per-viewer master playlist and MPD are made from them).
"""

import hashlib
import hmac
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from apps.content.audit import audit_record
from apps.content.storage import (
    StorageUnavailable,
    public_prefix,
    storage_delete_quietly,
    storage_put_file,
)
from apps.transcode import ffmpeg
from apps.transcode.encryption import encrypt_media, media_playlists
from apps.transcode.ffmpeg import MANIFEST as MPD
from apps.transcode.keys import ContentKey, content_key_new, key_unwrap, key_wrap, master_key_id
from apps.transcode.models import DeliveryEncryption, TranscodeJob
from apps.transcode.mpd import read_tracks
from apps.transcode.packaging import MASTER, content_type_of

logger = logging.getLogger(__name__)

PUBLIC_CACHE = "public, max-age=31536000, immutable"
OUT_FOLDER = "encrypted"


@dataclass(frozen=True)
class Encrypted:
    """What a job's encryption made, before its row is saved (at publish)."""

    prefix: str
    hls: ContentKey
    dash: ContentKey
    counts: dict = field(default_factory=dict)
    complete: bool = True


def job_public_prefix(job: TranscodeJob) -> str:
    """Stable for the job (a retry overwrites, a cleanup finds it), unguessable without the
    secret key: ``public/<content>/<HMAC of the job>/``."""
    mark = hmac.new(
        settings.SECRET_KEY.encode(), f"public|{job.pk}".encode(), hashlib.sha256
    ).hexdigest()[:32]
    return f"{public_prefix(str(job.content_id))}{mark}/"


def _encrypt_upload(
    folder: Path, prefix: str, *, hls: ContentKey, dash: ContentKey, done: dict, final: bool
) -> dict:
    """Encrypt what the package in ``folder`` lists beyond ``done`` and upload it under
    ``prefix``; returns the new counts."""
    out = folder / OUT_FOLDER
    shutil.rmtree(out, ignore_errors=True)
    files, counts = encrypt_media(
        folder,
        out,
        hls=hls,
        dash=dash,
        master=(folder / MASTER).read_text(),
        manifest=MPD,
        done=done,
        final=final,
        binary=ffmpeg.ffmpeg_binary(settings.TRANSCODE_FFMPEG),
    )
    for name in files:
        storage_put_file(
            str(out / name),
            prefix + name,
            content_type=content_type_of(name),
            cache_control=PUBLIC_CACHE,
        )
    shutil.rmtree(out, ignore_errors=True)
    return counts


def package_encrypt(folder: Path, job: TranscodeJob) -> Encrypted:
    """Encrypt the packaged ``folder`` and upload the result under the job's public prefix."""
    hls, dash = content_key_new(), content_key_new()
    prefix = job_public_prefix(job)
    counts = _encrypt_upload(folder, prefix, hls=hls, dash=dash, done={}, final=True)
    return Encrypted(prefix=prefix, hls=hls, dash=dash, counts=counts)


def encryption_save(job: TranscodeJob, encrypted: Encrypted) -> DeliveryEncryption:
    """The row that makes the job's encrypted media playable (in the caller's transaction)."""
    master_id, hls_wrapped = key_wrap(encrypted.hls, job_id=job.pk)
    _, dash_wrapped = key_wrap(encrypted.dash, job_id=job.pk)
    DeliveryEncryption.objects.filter(job=job).delete()
    return DeliveryEncryption.objects.create(
        job=job,
        public_prefix=encrypted.prefix,
        hls_kid=encrypted.hls.kid,
        hls_key=hls_wrapped,
        cenc_kid=encrypted.dash.kid,
        cenc_key=dash_wrapped,
        master_key_id=master_id,
        counts=encrypted.counts,
        complete=encrypted.complete,
    )


def chunked_encryption_start(job: TranscodeJob) -> DeliveryEncryption:
    """A chunked job's keys, before its first chunk: each publication encrypts what it lists."""
    encrypted = Encrypted(
        prefix=job_public_prefix(job),
        hls=content_key_new(),
        dash=content_key_new(),
        complete=False,
    )
    return encryption_save(job, encrypted)


def chunks_encrypt(job: TranscodeJob, folder: Path, *, final: bool) -> None:
    """Encrypt what a chunked job's manifests (just written into ``folder``) list that no
    earlier publication encrypted: the new segments are read from the job's folder. With
    ``final``, the public playlists are written and the clear media leave the job's folder
    once the transaction commits. Called under the job's row lock (chunks_advance)."""
    row = DeliveryEncryption.objects.select_for_update().filter(job=job).first()
    if row is None:
        return  # not an encrypted job
    hls, dash = content_keys(row)
    media = clear_media(folder)
    for name in media:
        if not (folder / name).exists():
            _fetch(job.output_prefix + name, folder / name)
    row.counts = _encrypt_upload(
        folder, row.public_prefix, hls=hls, dash=dash, done=row.counts, final=final
    )
    row.complete = final
    row.save(update_fields=["counts", "complete"])
    if final:
        prefix = job.output_prefix

        def delete_clear() -> None:
            for name in media:
                storage_delete_quietly(prefix + name)

        transaction.on_commit(delete_clear)


def clear_media(folder: Path) -> list[str]:
    """The clear media of a package (segments, init segments): what the token path must no
    longer serve once the job is encrypted. The media playlists stay: growing encrypted ones
    are made from them (apps/access/stream_encrypted.py)."""
    names: set[str] = set()
    for track in read_tracks(folder / MPD):
        names.add(track.init)
        names.update(segment.uri for segment in track.segments)
    return sorted(names)


def _download(job: TranscodeJob, folder: Path) -> list[str]:
    """The job's manifests and media from storage into ``folder``; returns the media's names."""
    for name in (MASTER, MPD):
        _fetch(job.output_prefix + name, folder / name)
    for name in media_playlists((folder / MASTER).read_text()):
        _fetch(job.output_prefix + name, folder / name)
    media = clear_media(folder)
    for name in media:
        if not (folder / name).exists():
            _fetch(job.output_prefix + name, folder / name)
    return media


def _fetch(path: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with default_storage.open(path, "rb") as source:
            target.write_bytes(source.read())
    except FileNotFoundError:
        raise
    except OSError as error:
        raise StorageUnavailable(f"reading {path!r}: {error}") from error


def job_encrypt(job: TranscodeJob) -> DeliveryEncryption | None:
    """Encrypt a job published in clear (a content from before encryption); None when it is
    encrypted already. Its clear media are deleted from the token path's folder afterwards."""
    existing = DeliveryEncryption.objects.filter(job=job).first()
    if existing is not None:
        return None
    with tempfile.TemporaryDirectory(prefix="sg-encrypt-") as temporary:
        folder = Path(temporary)
        media = _download(job, folder)
        encrypted = package_encrypt(folder, job)
    with transaction.atomic():
        row = encryption_save(job, encrypted)
    for name in media:
        storage_delete_quietly(job.output_prefix + name)
    logger.info("job encrypted", extra={"job_id": str(job.pk), "files": len(media)})
    return row


def content_keys(row: DeliveryEncryption) -> tuple[ContentKey, ContentKey]:
    """(HLS key, DASH key) of an encrypted job, unwrapped; KeyUnavailable when they cannot be."""
    hls = key_unwrap(row.hls_key, master_id=row.master_key_id, job_id=row.job_id, kid=row.hls_kid)
    dash = key_unwrap(
        row.cenc_key, master_id=row.master_key_id, job_id=row.job_id, kid=row.cenc_kid
    )
    return hls, dash


def master_keys_rewrap() -> int:
    """Wrap every content key under the current master key (after adding a new one); returns
    how many rows changed. Media and key ids stay: players notice nothing."""
    current = master_key_id()
    changed = 0
    for job_id in (
        DeliveryEncryption.objects.exclude(master_key_id=current)
        .values_list("job_id", flat=True)
        .iterator()
    ):
        with transaction.atomic():
            row = DeliveryEncryption.objects.select_for_update().filter(job_id=job_id).first()
            if row is None or row.master_key_id == current:
                continue
            hls, dash = content_keys(row)
            before = row.master_key_id
            master_id, row.hls_key = key_wrap(hls, job_id=job_id)
            _, row.cenc_key = key_wrap(dash, job_id=job_id)
            row.master_key_id = master_id
            row.rewrapped_at = timezone.now()
            row.save(update_fields=["hls_key", "cenc_key", "master_key_id", "rewrapped_at"])
            audit_record(
                event="keys.content_key.rewrapped",
                target=row,
                details={"job_id": str(job_id), "from_master": before, "to_master": master_id},
            )
            changed += 1
    logger.info("content keys rewrapped", extra={"rows": changed, "master_key_id": current})
    return changed
