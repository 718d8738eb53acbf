"""Captions through the API: WebVTT kept, SRT converted, every refusal a JSON 400 with its
reason, one language once (409), owner or staff only, deletion, and the cached content JSON
showing each change at once."""

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.content.caption_files import MAX_CAPTION_BYTES
from apps.content.models import Caption, ContentStatus
from apps.content.tasks import content_files_delete
from tests.factories import ContentFactory, StaffFactory

pytestmark = pytest.mark.django_db

VTT = (
    "WEBVTT - a header note\n"
    "X-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n"
    "\n"
    "intro\n"
    "00:00:01.000 --> 00:00:02.500 line:90%\n"
    "Hello <b>there</b>\n"
    "\n"
    "NOTE a comment\n"
    "\n"
    "00:03.000 --> 00:04.000\n"
    "Short form\n"
)
SRT = (
    "\ufeff1\r\n"
    "00:00:01,000 --> 00:00:02,500\r\n"
    "Bonjour <i>tout le monde</i>\r\n"
    "\r\n"
    "2\r\n"
    "00:01:03,250 --> 00:01:04,000\r\n"
    "Ligne un\r\n"
    "Ligne deux\r\n"
)
SRT_AS_VTT = (
    "WEBVTT\n"
    "\n"
    "00:00:01.000 --> 00:00:02.500\n"
    "Bonjour <i>tout le monde</i>\n"
    "\n"
    "00:01:03.250 --> 00:01:04.000\n"
    "Ligne un\n"
    "Ligne deux\n"
)


def captions_url(content) -> str:
    return f"/api/v1/contents/{content.id}/captions/"


def upload(client, content, data: bytes | str, language="en", label=None, name="subs.vtt"):
    if isinstance(data, str):
        data = data.encode("utf-8")
    form = {"file": SimpleUploadedFile(name, data), "language": language}
    if label is not None:
        form["label"] = label
    return client.post(captions_url(content), form, format="multipart")


def stored(media_root, caption_id) -> str:
    caption = Caption.objects.get(pk=caption_id)
    return (media_root / caption.path).read_text(encoding="utf-8")


@pytest.fixture
def mine(creator):
    return ContentFactory(owner=creator, status=ContentStatus.READY)


def test_webvtt_is_kept_and_shown_in_the_content_at_once(creator, client_for, mine, media_root):
    client = client_for(creator)
    detail = f"/api/v1/contents/{mine.id}/"
    assert client.get(detail).json()["captions"] == []  # now cached
    response = upload(client, mine, VTT)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {"id": body["id"], "language": "en", "label": "English"}
    # Kept as written, but for the timestamp map, which the server writes when it serves it.
    assert stored(media_root, body["id"]) == VTT.replace(
        "X-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n", ""
    )
    assert client.get(detail).json()["captions"] == [body]
    listed = client.get("/api/v1/contents/?owner=me").json()["results"][0]["captions"]
    assert listed == [body]


def test_srt_is_converted_to_webvtt(creator, client_for, mine, media_root):
    response = upload(client_for(creator), mine, SRT, language="fr-CA", name="film.srt")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["language"], body["label"]) == ("fr-CA", "French (Canada)")
    assert stored(media_root, body["id"]) == SRT_AS_VTT


def test_srt_as_found_in_the_wild_is_taken(creator, client_for, mine, media_root):
    """No blanks around the arrow, one-digit hours, coordinates after the times, dots."""
    wild = (
        "1\n0:00:01,000-->0:00:02,000 X1:10 X2:20 Y1:5 Y2:9\nOne\n\n"
        "2\n00:00:03.000 --> 00:00:04.000\nTwo\n"
    )
    response = upload(client_for(creator), mine, wild, name="wild.srt")
    assert response.status_code == 201, response.content
    assert stored(media_root, response.json()["id"]) == (
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nOne\n\n00:00:03.000 --> 00:00:04.000\nTwo\n"
    )


def test_tags_are_written_in_their_conventional_case_and_labels_are_kept(creator, client_for, mine):
    client = client_for(creator)
    first = upload(client, mine, VTT, language="ZH-hant-tw", label="  Chinese\n(Taiwan) ")
    assert first.json()["language"] == "zh-Hant-TW"
    assert first.json()["label"] == "Chinese (Taiwan)"
    second = upload(client, mine, SRT, language="pt-br")
    assert second.json()["label"] == "Portuguese (Brazil)"
    languages = [
        c["language"] for c in client.get(f"/api/v1/contents/{mine.id}/").json()["captions"]
    ]
    assert languages == ["pt-BR", "zh-Hant-TW"]


def test_a_long_language_name_is_cut_to_fit_the_label(creator, client_for, mine):
    """langcodes names some tags in more than the label's 100 characters: cut, not a 500."""
    response = upload(client_for(creator), mine, VTT, language="xna-Cans-GS")
    assert response.status_code == 201, response.content
    assert 0 < len(response.json()["label"]) <= 100


def test_a_second_file_for_a_language_is_a_conflict(creator, client_for, mine):
    client = client_for(creator)
    assert upload(client, mine, VTT, language="en-GB").status_code == 201
    response = upload(client, mine, SRT, language="EN-gb")
    assert response.status_code == 409
    assert response.json()["reason"] == "caption_exists"
    assert "delete them first" in response.json()["detail"]
    assert Caption.objects.count() == 1


BAD = {
    "language_missing": ({"language": " "}, VTT),
    "language_underscore": ({"language": "en_US"}, VTT),
    "language_not_a_tag": ({"language": "english!"}, VTT),
    "language_too_long_subtag": ({"language": "en-abcdefghi"}, VTT),
    "language_unknown_shape": ({"language": "1234"}, VTT),
    "label_control": ({"label": "Eng\x07lish"}, VTT),
    "label_too_long": ({"label": "x" * 101}, VTT),
    "not_utf8": ({}, "WEBVTT\n\n00:01.000 --> 00:02.000\ncaf\xe9\n".encode("latin-1")),
    "too_large": ({}, b"WEBVTT\n\n" + b"x" * MAX_CAPTION_BYTES),
    "empty": ({}, b"\xef\xbb\xbf \n"),
    "binary": ({}, b"WEBVTT\n\0\0\0"),
    "prose": ({}, "Just some words,\nnot captions.\n"),
    "bad_header": ({}, "WEBVTTX\n\n00:01.000 --> 00:02.000\nx\n"),
    "ends_before_start": ({}, "WEBVTT\n\n00:05.000 --> 00:02.000\nx\n"),
    "srt_61_seconds": ({}, "1\n00:00:61,000 --> 00:01:02,000\nx\n"),
    "srt_dot_vtt_style_broken": ({}, "1\n00:00:01 --> 00:00:02\nx\n"),
    "no_cues": ({}, "WEBVTT\n\nNOTE nothing to show\n"),
    # webvtt-py would fold the second cue into the first one's text: refused, not swallowed.
    "srt_cue_lost": (
        {},
        "1\n00:00:01,000 --> 00:00:02,000\nOne\n\n00:00:03,000 --> 00:00:04,000\nTwo\n",
    ),
}
REASONS = {
    "language_missing": "language_missing",
    "label_control": "label_invalid",
    "label_too_long": "label_invalid",
    "not_utf8": "not_utf8",
    "too_large": "file_too_large",
    "empty": "file_empty",
    "binary": "not_text",
    "prose": "caption_unparseable",
    "bad_header": "caption_unparseable",
    "ends_before_start": "cue_timing_invalid",
    "srt_61_seconds": "cue_timing_invalid",
    "srt_dot_vtt_style_broken": "cue_timing_invalid",
    "no_cues": "caption_empty",
    "srt_cue_lost": "caption_unparseable",
}


@pytest.mark.parametrize("case", list(BAD))
def test_every_refusal_is_a_400_with_a_reason(creator, client_for, mine, media_root, case):
    fields, data = BAD[case]
    response = upload(client_for(creator), mine, data, **fields)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["reason"] == REASONS.get(case, "language_invalid")
    assert body["detail"]
    assert Caption.objects.count() == 0
    assert not (media_root / "captions").exists()


def test_the_reasons_say_what_to_fix(creator, client_for, mine):
    client = client_for(creator)
    timing = upload(client, mine, "WEBVTT\n\n00:05.000 --> 00:02.000\nx\n").json()["detail"]
    assert timing == "Line 3: the cue ends (00:02.000) before it starts (00:05.000)."
    tag = upload(client, mine, VTT, language="en_US").json()["detail"]
    assert tag.startswith("'en_US' is not a well-formed BCP 47 language tag")
    large = upload(client, mine, b"x" * (MAX_CAPTION_BYTES + 10)).json()["detail"]
    assert "larger than 1 MiB" in large


def test_a_missing_file_or_language_is_a_validation_error(creator, client_for, mine):
    client = client_for(creator)
    response = client.post(captions_url(mine), {"language": "en"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()
    response = client.post(
        captions_url(mine), {"file": SimpleUploadedFile("a.vtt", VTT.encode())}, format="multipart"
    )
    assert response.status_code == 400
    assert "language" in response.json()
    response = client.post(captions_url(mine), {"language": "en"}, format="json")
    assert response.status_code == 415


def test_only_the_owner_or_staff_manage_captions(creator, viewer, client_for, api_client, mine):
    assert upload(api_client, mine, VTT).status_code == 401
    refused = upload(client_for(viewer), mine, VTT)
    assert refused.status_code == 403
    assert refused.json()["reason"] == "permission_denied"
    draft = ContentFactory(owner=creator)
    assert upload(client_for(viewer), draft, VTT).status_code == 404  # cannot even see it
    staff = upload(client_for(StaffFactory()), draft, VTT)
    assert staff.status_code == 201
    caption_id = staff.json()["id"]
    delete = f"/api/v1/contents/{draft.id}/captions/{caption_id}/"
    assert client_for(viewer).delete(delete).status_code == 404
    assert api_client.delete(delete).status_code == 401
    own = upload(client_for(creator), mine, VTT).json()["id"]
    assert (
        client_for(viewer).delete(f"/api/v1/contents/{mine.id}/captions/{own}/").status_code == 403
    )
    assert Caption.objects.count() == 2


def test_deleting_captions_removes_them_and_their_file(
    creator, client_for, mine, media_root, django_capture_on_commit_callbacks
):
    client = client_for(creator)
    detail = f"/api/v1/contents/{mine.id}/"
    caption_id = upload(client, mine, VTT).json()["id"]
    path = media_root / Caption.objects.get(pk=caption_id).path
    assert len(client.get(detail).json()["captions"]) == 1  # cached with the caption
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"/api/v1/contents/{mine.id}/captions/{caption_id}/")
    assert response.status_code == 204
    assert not path.exists()
    assert client.get(detail).json()["captions"] == []
    missing = client.delete(f"/api/v1/contents/{mine.id}/captions/{caption_id}/")
    assert missing.status_code == 404
    assert missing.json()["reason"] == "not_found"
    # Another content's caption is not this content's.
    other = ContentFactory(owner=creator)
    theirs = upload(client, other, VTT).json()["id"]
    assert client.delete(f"/api/v1/contents/{mine.id}/captions/{theirs}/").status_code == 404
    assert client.delete(f"/api/v1/contents/{mine.id}/captions/{uuid.uuid4()}/").status_code == 404


def test_deleting_the_content_deletes_its_captions(creator, client_for, mine, media_root):
    caption_id = upload(client_for(creator), mine, VTT).json()["id"]
    path = media_root / Caption.objects.get(pk=caption_id).path
    assert path.exists()
    content_files_delete(str(mine.id))
    assert not path.parent.exists()


def test_storage_that_refuses_the_file_is_a_503_and_saves_nothing(
    creator, client_for, mine, media_root
):
    media_root.mkdir(parents=True, exist_ok=True)
    (media_root / "captions").write_text("a file where the captions folder should be")
    response = upload(client_for(creator), mine, VTT)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert (body["reason"], body["dependency"]) == ("unavailable", "storage")
    assert Caption.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_content_deleted_during_the_upload_leaves_no_file(media_root):
    """The row's foreign key is checked at commit: the file stored just before is removed."""
    from apps.content.models import Content
    from apps.content.services import caption_create
    from streamgate.exceptions import NotFound

    content = ContentFactory()
    stale = Content.objects.get(pk=content.pk)
    Content.objects.filter(pk=content.pk).delete()
    with pytest.raises(NotFound, match="No such content"):
        caption_create(content=stale, data=VTT.encode(), language="en")
    assert Caption.objects.count() == 0
    assert not list((media_root / "captions").rglob("*.vtt"))
