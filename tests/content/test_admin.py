"""The Django admin is a door into the services like any other: a content's gate is validated
by ``content_update`` (errors on the form), and internal fields cannot be edited at all."""

import json

import pytest
from eth_utils import to_checksum_address

from apps.content.models import Content
from tests.factories import ContentFactory, CreatorFactory, RenditionFactory, StaffFactory

pytestmark = pytest.mark.django_db

CONTRACT = "0x" + "ab" * 20
CHECKSUMMED = to_checksum_address(CONTRACT)


@pytest.fixture
def admin_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


def change_url(content: Content) -> str:
    return f"/admin/content/content/{content.pk}/change/"


INLINE_EMPTY = {
    "TOTAL_FORMS": "0",
    "INITIAL_FORMS": "0",
    "MIN_NUM_FORMS": "0",
    "MAX_NUM_FORMS": "0",
}


def change_form(content: Content, **fields) -> dict:
    """What the change form posts, plus ``fields``; the renditions and captions inlines are
    empty. (The
    internal fields are what a form that offered them would post back unchanged.)"""
    data = {
        "title": content.title,
        "description": content.description,
        "gate": json.dumps(content.gate) if content.gate is not None else "",
        "owner": str(content.owner_id),
        "source_path": content.source_path,
        "source_size": content.source_size or "",
        "source_sha256": content.source_sha256,
        "published_job": content.published_job_id or "",
        "renditions-TOTAL_FORMS": "0",
        "renditions-INITIAL_FORMS": "0",
        "renditions-MIN_NUM_FORMS": "0",
        "renditions-MAX_NUM_FORMS": "1000",
        **{f"captions-{name}": value for name, value in INLINE_EMPTY.items()},
    }
    data.update({k: json.dumps(v) if k == "gate" else v for k, v in fields.items()})
    return data


def test_an_invalid_gate_is_refused_on_the_form_with_the_services_message(admin_client):
    content = ContentFactory(gate={"allowlist": {"accounts": ["eip155:1:" + CHECKSUMMED]}})
    before = content.gate
    response = admin_client.post(
        change_url(content),
        change_form(content, gate={"erc721": {"chain": "eip155:1", "contract": "0x123"}}),
    )
    assert response.status_code == 200  # the form again, not a redirect
    errors = response.context["adminform"].form.errors
    assert errors["gate"] == [
        "Invalid gate at $.erc721.contract: a 0x-prefixed 20-byte hex address"
    ]
    content.refresh_from_db()
    assert content.gate == before


def test_a_gate_saved_in_the_admin_is_stored_in_the_services_normal_form(admin_client, settings):
    settings.CHAIN_RPC_URLS = {"eip155:1": "http://127.0.0.1:9/"}
    content = ContentFactory()
    gate = {"erc721": {"chain": "eip155:1", "contract": CONTRACT}}
    response = admin_client.post(change_url(content), change_form(content, gate=gate, title="New"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    content.refresh_from_db()
    assert content.title == "New"
    assert content.gate == {
        "erc721": {"chain": "eip155:1", "contract": CHECKSUMMED, "token_id": None}
    }


def test_a_title_can_be_edited_under_a_rule_saved_before_todays_checks(admin_client, settings):
    settings.CHAIN_RPC_URLS = {}
    old_rule = {"erc721": {"chain": "eip155:10", "contract": CHECKSUMMED, "token_id": None}}
    content = ContentFactory(gate=old_rule)
    response = admin_client.post(change_url(content), change_form(content, title="Renamed"))
    assert response.status_code == 302
    content.refresh_from_db()
    assert (content.title, content.gate) == ("Renamed", old_rule)


def test_internal_fields_cannot_be_changed_in_the_admin(admin_client):
    content = ContentFactory(source_path="sources/a/clip.mp4", source_sha256="aa" * 32)
    original_owner = content.owner
    other = CreatorFactory()
    response = admin_client.post(
        change_url(content),
        change_form(
            content,
            title="Renamed",
            owner=str(other.pk),
            source_path="../../etc/passwd",
            source_sha256="bb" * 32,
            source_size="1",
            status="ready",
        ),
    )
    assert response.status_code == 302
    content.refresh_from_db()
    assert content.title == "Renamed"
    assert content.owner == original_owner
    assert content.source_path == "sources/a/clip.mp4"
    assert content.source_sha256 == "aa" * 32
    assert content.source_size is None
    assert content.status == "draft"
    form = admin_client.get(change_url(content)).context["adminform"].form
    assert sorted(form.fields) == ["description", "gate", "title"]


def test_contents_are_not_added_in_the_admin(admin_client):
    # A content is created by its creator (API, studio, `manage.py ingest`), never typed in.
    assert admin_client.get("/admin/content/content/add/").status_code == 403


def test_renditions_are_read_only_in_the_admin(admin_client):
    rendition = RenditionFactory()
    url = f"/admin/content/rendition/{rendition.pk}/change/"
    assert list(admin_client.get(url).context["adminform"].form.fields) == []
    admin_client.post(url, {"playlist": "../../secret", "width": "1", "content": "x"})
    rendition.refresh_from_db()
    assert rendition.width == 1280
    assert rendition.playlist.startswith("renditions/")
    assert admin_client.get("/admin/content/rendition/add/").status_code == 403


def test_captions_are_shown_read_only_in_the_admin(admin_client):
    from apps.content.services import caption_create

    content = ContentFactory()
    caption_create(content=content, data=b"WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n", language="fr")
    page = admin_client.get(change_url(content)).content.decode()
    assert "French" in page
    assert 'name="captions-0-label"' not in page  # shown, not an editable field
