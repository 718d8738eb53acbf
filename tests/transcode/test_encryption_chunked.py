"""A long video encoded in chunks is encrypted the same way: each publication encrypts what it
lists, early viewers get growing playlists of public encrypted segments, and the end writes the
public playlists and removes the clear media."""

import time

import pytest
from django.test import Client

from apps.access.playback import playback_key_id, playback_keys
from apps.access.playback_tokens import KeyGrant, PlaybackGrant, key_token_sign, token_sign
from apps.transcode.encryption import aes128_decrypt, segment_iv
from apps.transcode.models import DeliveryEncryption, JobState
from apps.transcode.services.chunking import chunk_run
from apps.transcode.services.encrypting import content_keys
from tests.factories import ContentFactory
from tests.transcode.conftest import planned, store_source

pytestmark = pytest.mark.django_db(transaction=True)


def _urls(content, job) -> tuple[str, str]:
    kid = playback_key_id()
    key = playback_keys()[kid]
    expires = int(time.time()) + 600
    token = token_sign(
        PlaybackGrant(content_id=str(content.id), job_id=job.pk.hex, subject="-", expires=expires),
        kid=kid,
        key=key,
    )
    key_token = key_token_sign(
        KeyGrant(content_id=str(content.id), viewer=None, expires=expires), kid=kid, key=key
    )
    return f"/stream/{token}/{content.id}/", key_token


@pytest.mark.usefixtures("chunked")
def test_a_chunked_job_is_encrypted_as_its_chunks_are_published(
    chunked_clip, media_root, tmp_path, settings
):
    settings.MEDIA_ENCRYPTION = True
    content = store_source(ContentFactory(), chunked_clip)
    job, chunks = planned(content, tmp_path)
    row = DeliveryEncryption.objects.get(job=job)
    assert not row.complete
    assert row.counts == {}
    hls, _ = content_keys(row)
    chunk_run(chunk_id=chunks[("video", 0)].pk)
    chunk_run(chunk_id=chunks[("audio", 0)].pk)
    row.refresh_from_db()
    assert row.counts["hls/media_0.m3u8"] == 2  # the first chunk's two segments
    assert not row.complete
    base, key_token = _urls(content, job)
    master = Client().get(f"{base}master.m3u8?k={key_token}").content.decode()
    assert "\nhls/media_0.m3u8\n" in master  # growing: from the stream URL, not public yet
    growing = Client().get(f"{base}hls/media_0.m3u8")
    assert growing.status_code == 200
    lines = growing.content.decode().splitlines()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in lines
    segments = [line for line in lines if line.endswith(".m4s") and "/public/" in line]
    assert len(segments) == 2
    for url in segments:
        name = url.rsplit("/", 1)[1]
        stored = media_root / row.public_prefix / "hls" / name
        clear = aes128_decrypt(stored.read_bytes(), hls.key, segment_iv(hls.key, "hls/" + name))
        assert clear[4:8] == b"styp"
    native = Client().get(f"{base}master.m3u8?k={key_token}", HTTP_SEC_FETCH_DEST="video")
    assert "\nts/media_0.m3u8\n" in native.content.decode()
    assert native["Vary"] == "Sec-Fetch-Dest"

    chunk_run(chunk_id=chunks[("video", 1)].pk)
    chunk_run(chunk_id=chunks[("video", 2)].pk)
    job.refresh_from_db()
    row.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert row.complete
    folder = media_root / job.output_prefix
    assert not list(folder.glob("*.m4s"))  # the clear media left with the last publication
    public = media_root / row.public_prefix
    vod = (public / "hls" / "media_0.m3u8").read_text()
    assert vod.count("#EXTINF") == vod.count("#EXT-X-KEY") == row.counts["hls/media_0.m3u8"]
    assert vod.rstrip().endswith("#EXT-X-ENDLIST")
    assert len(list((public / "ts").glob("*.ts"))) == len(list((public / "hls").glob("chunk*")))
    master = Client().get(f"{base}master.m3u8?k={key_token}").content.decode()
    assert f"/public/{row.public_prefix.removeprefix('public/')}hls/media_0.m3u8" in master
    # A player that loaded the growing playlist reloads it and now finds its end.
    final = Client().get(f"{base}hls/media_0.m3u8").content.decode()
    assert final.rstrip().endswith("#EXT-X-ENDLIST")
