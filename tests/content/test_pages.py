"""The web UI's pages as the server renders them: who sees what, error pages in our design,
posters, the embeddable player, and sign-in/sign-out."""

import pytest
from django.test import Client

from apps.content.models import ContentStatus
from tests.factories import ContentFactory, CreatorFactory, UserFactory

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_catalog_lists_ready_content_only():
    ContentFactory(title="Shown", status=ContentStatus.READY)
    ContentFactory(title="Hidden draft", status=ContentStatus.DRAFT)
    page = Client().get("/").content.decode()
    assert "Shown" in page
    assert "Hidden draft" not in page


def test_studio_pages_are_for_creators():
    assert Client().get("/studio/")["Location"].startswith("/signin/?next=/studio/")
    viewer = signed_in(UserFactory())
    for url in ("/studio/", "/studio/upload/"):
        refused = viewer.get(url)
        assert refused.status_code == 403
        assert "Not allowed" in refused.content.decode()  # our 403 page
    creator = CreatorFactory()
    mine = ContentFactory(owner=creator, title="Mine")
    theirs = ContentFactory(title="Theirs")
    client = signed_in(creator)
    studio = client.get("/studio/").content.decode()
    assert "Mine" in studio
    assert "Theirs" not in studio
    assert client.get(f"/studio/{mine.id}/").status_code == 200
    missing = client.get(f"/studio/{theirs.id}/")
    assert missing.status_code == 404
    assert "Not found" in missing.content.decode()  # our 404 page


def test_watch_shows_state_and_hides_others_drafts():
    draft = ContentFactory(status=ContentStatus.PROCESSING, progress=40)
    assert Client().get(f"/watch/{draft.id}/").status_code == 404
    page = signed_in(draft.owner).get(f"/watch/{draft.id}/").content.decode()
    assert "still processing (processing, 40%)" in page
    failed = ContentFactory(status=ContentStatus.FAILED, error="No video stream.")
    page = signed_in(failed.owner).get(f"/watch/{failed.id}/").content.decode()
    assert "Processing failed: No video stream." in page


def _watch_config(page: str) -> dict:
    import json

    config = page.split('<script id="watch-config" type="application/json">')[1]
    return json.loads(config.split("</script>")[0])


def test_a_video_processing_whose_first_chunks_are_published_is_watchable_by_its_owner():
    from apps.transcode.models import JobState, TranscodeJob

    content = ContentFactory(status=ContentStatus.PROCESSING, progress=40, duration=600.2)
    job = TranscodeJob.objects.create(content=content, attempt=1, state=JobState.RUNNING)
    content.published_job = job
    content.playable_seconds = 119.96
    content.save(update_fields=["published_job", "playable_seconds"])
    owner = signed_in(content.owner)

    page = owner.get(f"/watch/{content.id}/").content.decode()
    assert "Still processing: 2:00 of 10:00 ready — it plays as the rest arrives." in page
    assert "still processing (processing" not in page  # the player, not the waiting message
    config = _watch_config(page)
    assert config["status"] == "processing"
    assert config["playable"] is True
    assert config["playableSeconds"] == 119.96
    assert config["duration"] == 600.2
    studio = owner.get("/studio/").content.decode()
    row = studio.split(f'data-content-id="{content.id}"')[1].split("</tr>")[0]
    assert 'data-playable="1"' in row
    assert "2:00 of 10:00 ready to watch" in row
    assert f'href="/watch/{content.id}/" >' in row  # Watch shown (not hidden)
    edit = owner.get(f"/studio/{content.id}/").content.decode()
    assert "Still processing: 2:00 of 10:00 can be watched already." in edit
    assert f'href="/watch/{content.id}/" id="watch" >' in edit
    assert Client().get(f"/watch/{content.id}/").status_code == 404  # the public waits

    # Not yet playable (no chunk published): the waiting message, Watch hidden, no line.
    content.published_job = None
    content.playable_seconds = None
    content.save(update_fields=["published_job", "playable_seconds"])
    page = owner.get(f"/watch/{content.id}/").content.decode()
    assert "still processing (processing, 40%)" in page
    assert "Still processing: " not in page
    assert _watch_config(page)["playable"] is False
    row = owner.get("/studio/").content.decode().split(f'data-content-id="{content.id}"')[1]
    row = row.split("</tr>")[0]
    assert 'data-playable=""' in row
    assert "ready to watch" not in row
    assert f'href="/watch/{content.id}/" hidden>' in row
    edit = owner.get(f"/studio/{content.id}/").content.decode()
    assert f'href="/watch/{content.id}/" id="watch" hidden>' in edit
    assert "can be watched already" not in edit


def test_the_embedded_player_may_be_framed_and_the_site_may_not():
    content = ContentFactory(status=ContentStatus.READY)
    page = Client().get(f"/watch/{content.id}/")
    assert page["X-Frame-Options"] == "DENY"
    embedded = Client().get(f"/watch/{content.id}/?embed=1")
    assert "X-Frame-Options" not in embedded
    assert 'class="topbar"' not in embedded.content.decode()


def test_posters_of_visible_content_only(media_root):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    ready = ContentFactory(status=ContentStatus.READY, poster="renditions/x/poster.jpg")
    default_storage.save("renditions/x/poster.jpg", ContentFile(b"\xff\xd8jpeg"))
    response = Client().get(f"/posters/{ready.id}.jpg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response.content == b"\xff\xd8jpeg"
    draft = ContentFactory(status=ContentStatus.DRAFT, poster="renditions/x/poster.jpg")
    assert Client().get(f"/posters/{draft.id}.jpg").status_code == 404
    bare = ContentFactory(status=ContentStatus.READY)
    assert Client().get(f"/posters/{bare.id}.jpg").status_code == 404


def test_password_sign_in_and_sign_out():
    CreatorFactory(username="writer")
    client = Client()
    wrong = client.post("/signin/", {"username": "writer", "password": "nope", "next": "/studio/"})
    assert wrong.status_code == 200
    assert "do not match" in wrong.content.decode()
    right = client.post(
        "/signin/", {"username": "writer", "password": "pass-word-123", "next": "/studio/"}
    )
    assert right["Location"] == "/studio/"
    elsewhere = client.post("/signout/", {"next": "https://evil.example/"})
    assert elsewhere["Location"] == "/"
    assert client.get("/studio/").status_code == 302  # signed out
    assert Client().get("/signout/").status_code == 405


def test_server_errors_get_our_page_without_a_request_context():
    from django.template.loader import render_to_string

    page = render_to_string("500.html")  # Django renders it with no context at all
    assert "Something went wrong" in page
    assert "/static/css/app.css" in page


def test_the_upload_page_replaces_the_file_of_ones_own_failed_content_only():
    import json

    from apps.content.status import ErrorKind

    failed = ContentFactory(status=ContentStatus.FAILED, title="Notes", error_kind=ErrorKind.SOURCE)
    client = signed_in(failed.owner)

    def replacing(raw: str):
        page = client.get(f"/studio/upload/?replace={raw}").content.decode()
        config = page.split('<script id="upload-config" type="application/json">')[1]
        return json.loads(config.split("</script>")[0])["replace"]

    assert replacing(str(failed.id)) == {"id": str(failed.id), "title": "Notes"}
    ready = ContentFactory(owner=failed.owner, status=ContentStatus.READY)
    theirs = ContentFactory(status=ContentStatus.FAILED)
    for raw in (str(ready.id), str(theirs.id), "not-a-uuid", ""):
        assert replacing(raw) is None
    edit = client.get(f"/studio/{failed.id}/").content.decode()
    assert f'href="/studio/upload/?replace={failed.id}"' in edit
    assert 'id="retry"' not in edit  # encoding a file that is not a video again cannot help
    assert 'id="snippet"' not in edit  # no embed code for a video that cannot play
