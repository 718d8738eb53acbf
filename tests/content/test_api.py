import uuid

import pytest

from apps.content.models import Content, ContentStatus
from apps.content.tasks import content_files_delete
from tests.factories import ContentFactory, CreatorFactory, RenditionFactory

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/contents/"


@pytest.fixture(autouse=True)
def _chains(settings):
    """Gates may name only chains with an RPC; nothing is asked when a gate is saved."""
    settings.CHAIN_RPC_URLS = {
        "eip155:1": "http://127.0.0.1:9/",
        "eip155:137": "http://127.0.0.1:9/",
    }


def detail(content) -> str:
    return f"/api/v1/contents/{content.id if hasattr(content, 'id') else content}/"


# --- create ------------------------------------------------------------------------------------


def test_creator_creates_a_draft(creator, client_for):
    response = client_for(creator).post(
        LIST_URL, {"title": "Launch", "description": "Our first"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "Launch"
    assert body["description"] == "Our first"
    assert body["status"] == "draft"
    assert body["progress"] == 0
    assert body["owner"] == creator.username
    assert body["renditions"] == []
    assert body["gate"] is None
    assert body["error"] is None
    assert body["thumbnail_url"] is None
    stored = Content.objects.get(pk=body["id"])
    assert stored.owner == creator
    assert stored.status == ContentStatus.DRAFT


def test_create_needs_sign_in(api_client):
    response = api_client.post(LIST_URL, {"title": "x"}, format="json")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert Content.objects.count() == 0


def test_viewer_cannot_create(viewer, client_for):
    response = client_for(viewer).post(LIST_URL, {"title": "x"}, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only creators can publish content.",
        "reason": "not_a_creator",
    }
    assert Content.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "field", "message_part"),
    [
        ({}, "title", "required"),
        ({"title": ""}, "title", "blank"),
        ({"title": "x" * 201}, "title", "200 characters"),
        ({"title": "ok", "description": "d" * 5001}, "description", "5000 characters"),
    ],
)
def test_create_validation_errors_name_the_field(creator, client_for, payload, field, message_part):
    response = client_for(creator).post(LIST_URL, payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert message_part in body[field][0]
    assert Content.objects.count() == 0


@pytest.mark.parametrize(
    ("gate", "path", "message_part"),
    [
        ([1, 2], "$", "exactly one key"),
        ("anyone", "$", "exactly one key"),
        ({"any": []}, "$.any", "non-empty list"),
        ({"erc721": {"chain": "eip155:1", "contract": "0x12"}}, "$.erc721.contract", "address"),
        (
            {"all": [{"allowlist": {"accounts": ["eip155:1:0xnope"]}}]},
            "$.all[0].allowlist.accounts[0]",
            "CAIP-10",
        ),
        # A final newline slipped past "$" and was stored as it came.
        (
            {"erc721": {"chain": "eip155:1\n", "contract": "0x" + "ab" * 20}},
            "$.erc721.chain",
            "CAIP-2",
        ),
        (
            {"erc721": {"chain": "eip155:1", "contract": "0x" + "ab" * 20, "token_id": "7\n"}},
            "$.erc721.token_id",
            "decimal string",
        ),
    ],
)
def test_create_refuses_a_bad_gate_with_the_path_of_the_bad_node(
    creator, client_for, gate, path, message_part
):
    response = client_for(creator).post(LIST_URL, {"title": "ok", "gate": gate}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["gate"]["path"] == path
    assert message_part in body["gate"]["detail"]
    assert Content.objects.count() == 0


UNCONFIGURED_GATE = {
    "any": [
        {"allowlist": {"accounts": ["eip155:1:0x" + "11" * 20]}},
        {"erc721": {"chain": "eip155:137", "contract": "0x" + "44" * 20, "token_id": None}},
    ]
}


def test_a_gate_on_a_chain_without_rpc_is_refused_naming_the_chain(creator, client_for, settings):
    """Nobody could ever be checked against it: every playback would wait for a chain that
    this server cannot ask. Refused when saved, with the path of the node, like a typo."""
    settings.CHAIN_RPC_URLS = {"eip155:1": "http://127.0.0.1:9/"}
    client = client_for(creator)
    response = client.post(LIST_URL, {"title": "ok", "gate": UNCONFIGURED_GATE}, format="json")
    assert response.status_code == 400
    problem = response.json()["gate"]
    assert problem["path"] == "$.any[1].erc721.chain"
    assert "no RPC is configured for eip155:137" in problem["detail"]
    assert "eip155:1" in problem["detail"]  # what it could use instead
    assert Content.objects.count() == 0

    content = ContentFactory(owner=creator)
    response = client.patch(detail(content), {"gate": UNCONFIGURED_GATE}, format="json")
    assert response.status_code == 400
    assert response.json()["gate"]["path"] == "$.any[1].erc721.chain"
    content.refresh_from_db()
    assert content.gate is None


def test_a_solana_gate_needs_a_solana_rpc(creator, client_for, settings):
    settings.CHAIN_RPC_URLS = {}
    gate = {
        "metaplex": {"chain": "solana:mainnet", "collection": "11111111111111111111111111111111"}
    }
    response = client_for(creator).post(LIST_URL, {"title": "ok", "gate": gate}, format="json")
    assert response.status_code == 400
    assert response.json()["gate"]["path"] == "$.metaplex.chain"
    assert "solana:mainnet" in response.json()["gate"]["detail"]


def test_an_allowlist_needs_no_rpc(creator, client_for, settings):
    settings.CHAIN_RPC_URLS = {}
    gate = {"allowlist": {"accounts": ["eip155:137:0x" + "11" * 20]}}
    response = client_for(creator).post(LIST_URL, {"title": "ok", "gate": gate}, format="json")
    assert response.status_code == 201


def test_a_gate_is_stored_in_its_normal_form(creator, client_for):
    lower = "0x" + "ab" * 20
    gate = {"erc1155": {"chain": "eip155:1", "contract": lower, "token_id": 7, "min_balance": 2}}
    response = client_for(creator).post(LIST_URL, {"title": "ok", "gate": gate}, format="json")
    assert response.status_code == 201
    stored = response.json()["gate"]["erc1155"]
    assert stored == {
        "chain": "eip155:1",
        "contract": "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB",  # EIP-55 of the lowercase
        "token_id": "7",
        "min_balance": "2",
    }


def test_status_and_owner_are_not_writable(creator, client_for):
    response = client_for(creator).post(
        LIST_URL, {"title": "t", "status": "ready", "owner": "someone"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["status"] == "draft"
    assert response.json()["owner"] == creator.username


# --- read --------------------------------------------------------------------------------------


def test_anonymous_sees_only_ready_content(api_client):
    ready = ContentFactory(status=ContentStatus.READY)
    ContentFactory(status=ContentStatus.DRAFT)
    ContentFactory(status=ContentStatus.FAILED)
    response = api_client.get(LIST_URL)
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["results"]] == [str(ready.id)]


def test_owner_sees_own_drafts_but_not_others(creator, client_for):
    mine = ContentFactory(owner=creator, status=ContentStatus.DRAFT)
    ready = ContentFactory(status=ContentStatus.READY)
    others_draft = ContentFactory(status=ContentStatus.DRAFT)
    client = client_for(creator)
    ids = {c["id"] for c in client.get(LIST_URL).json()["results"]}
    assert ids == {str(mine.id), str(ready.id)}
    assert client.get(detail(mine)).status_code == 200
    assert client.get(detail(others_draft)).status_code == 404


def test_staff_sees_everything(staff, client_for):
    contents = [ContentFactory(status=s) for s in ContentStatus.values]
    response = client_for(staff).get(LIST_URL)
    assert {c["id"] for c in response.json()["results"]} == {str(c.id) for c in contents}


def test_retrieve_includes_renditions(api_client):
    rendition = RenditionFactory()
    body = api_client.get(detail(rendition.content)).json()
    assert body["renditions"] == [
        {
            "name": "720p",
            "width": 1280,
            "height": 720,
            "bitrate": 3_000_000,
            "codecs": "avc1.64001f,mp4a.40.2",
        }
    ]


def test_unknown_and_malformed_ids_are_404(api_client):
    assert api_client.get(detail(uuid.uuid4())).status_code == 404
    assert api_client.get("/api/v1/contents/not-a-uuid/").status_code == 404


def test_pagination(api_client):
    contents = [ContentFactory(status=ContentStatus.READY) for _ in range(25)]
    first = api_client.get(LIST_URL).json()
    assert first["count"] == 25
    assert len(first["results"]) == 20
    assert first["next"].endswith("?page=2")
    assert first["previous"] is None
    second = api_client.get(first["next"]).json()
    assert len(second["results"]) == 5
    seen = [c["id"] for c in first["results"] + second["results"]]
    newest_first = sorted(contents, key=lambda c: (c.created_at, c.id), reverse=True)
    assert seen == [str(c.id) for c in newest_first]
    small = api_client.get(LIST_URL, {"page_size": 7}).json()
    assert len(small["results"]) == 7
    capped = api_client.get(LIST_URL, {"page_size": 1000}).json()
    assert len(capped["results"]) == 25
    assert api_client.get(LIST_URL, {"page": 9}).status_code == 404


def test_filter_by_status_and_owner(creator, client_for):
    other = CreatorFactory(username="alice")
    mine_draft = ContentFactory(owner=creator, status=ContentStatus.DRAFT)
    mine_ready = ContentFactory(owner=creator, status=ContentStatus.READY)
    alice_ready = ContentFactory(owner=other, status=ContentStatus.READY)
    client = client_for(creator)

    def ids(**params):
        return {c["id"] for c in client.get(LIST_URL, params).json()["results"]}

    assert ids(status="draft") == {str(mine_draft.id)}
    assert ids(status="ready") == {str(mine_ready.id), str(alice_ready.id)}
    assert ids(owner="alice") == {str(alice_ready.id)}
    assert ids(owner="me") == {str(mine_draft.id), str(mine_ready.id)}
    assert ids(owner="me", status="ready") == {str(mine_ready.id)}
    assert ids(owner="nobody") == set()


def test_bad_status_filter_is_400(api_client):
    response = api_client.get(LIST_URL, {"status": "published"})
    assert response.status_code == 400
    assert "status" in response.json()


def test_owner_me_when_anonymous_is_empty(api_client):
    ContentFactory(status=ContentStatus.READY)
    assert api_client.get(LIST_URL, {"owner": "me"}).json()["count"] == 0


# --- update ------------------------------------------------------------------------------------


def test_owner_edits_title_description_and_gate(creator, client_for):
    content = ContentFactory(owner=creator)
    gate = {
        "any": [
            {
                "erc721": {
                    "chain": "eip155:137",
                    "contract": "0x0000000000000000000000000000000000000001",
                    "token_id": None,
                }
            }
        ]
    }
    response = client_for(creator).patch(
        detail(content), {"title": "New", "description": "More", "gate": gate}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["title"] == "New"
    content.refresh_from_db()
    assert (content.title, content.description, content.gate) == ("New", "More", gate)


def test_patch_ignores_read_only_fields(creator, client_for):
    content = ContentFactory(owner=creator)
    response = client_for(creator).patch(
        detail(content), {"status": "ready", "progress": 100}, format="json"
    )
    assert response.status_code == 200
    content.refresh_from_db()
    assert content.status == ContentStatus.DRAFT
    assert content.progress == 0


def test_patch_validation_error(creator, client_for):
    content = ContentFactory(owner=creator, title="Before")
    response = client_for(creator).patch(detail(content), {"title": ""}, format="json")
    assert response.status_code == 400
    assert "title" in response.json()
    content.refresh_from_db()
    assert content.title == "Before"


@pytest.mark.parametrize(
    "chain",
    [
        "eip155:" + "1" * 5000,  # past int()'s 4300 digits: a ValueError, a 500
        "eip155:\u0663",  # an Arabic-Indic digit: "\\d" matched it
        "eip155:0",
    ],
)
def test_register_refuses_malformed_chain_ids(creator, client_for, chain):
    content = ContentFactory(owner=creator)
    response = client_for(creator).post(
        f"{detail(content)}register/", {"chain": chain}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"chain": ["This value does not match the required pattern."]}


def test_other_user_cannot_edit_ready_content(viewer, client_for):
    content = ContentFactory(status=ContentStatus.READY, title="Theirs")
    response = client_for(viewer).patch(detail(content), {"title": "Mine"}, format="json")
    assert response.status_code == 403
    content.refresh_from_db()
    assert content.title == "Theirs"


def test_other_user_gets_404_for_a_draft(viewer, client_for):
    content = ContentFactory(status=ContentStatus.DRAFT)
    assert (
        client_for(viewer).patch(detail(content), {"title": "x"}, format="json").status_code == 404
    )
    assert client_for(viewer).delete(detail(content)).status_code == 404


def test_anonymous_cannot_edit(api_client):
    content = ContentFactory(status=ContentStatus.READY)
    assert api_client.patch(detail(content), {"title": "x"}, format="json").status_code == 401
    assert api_client.delete(detail(content)).status_code == 401


def test_staff_edits_any_content(staff, client_for):
    content = ContentFactory(status=ContentStatus.DRAFT)
    response = client_for(staff).patch(detail(content), {"title": "Moderated"}, format="json")
    assert response.status_code == 200
    content.refresh_from_db()
    assert content.title == "Moderated"


# --- delete ------------------------------------------------------------------------------------


def test_owner_deletes_and_files_are_removed_after_commit(
    creator, client_for, django_capture_on_commit_callbacks
):
    content = ContentFactory(owner=creator)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(creator).delete(detail(content))
    assert response.status_code == 204
    assert not Content.objects.filter(pk=content.pk).exists()
    enqueued = [c for c in callbacks if getattr(c, "task", None) is content_files_delete]
    assert len(enqueued) == 1
    assert enqueued[0].args == (str(content.id),)


def test_other_user_cannot_delete_ready_content(viewer, client_for):
    content = ContentFactory(status=ContentStatus.READY)
    assert client_for(viewer).delete(detail(content)).status_code == 403
    assert Content.objects.filter(pk=content.pk).exists()
