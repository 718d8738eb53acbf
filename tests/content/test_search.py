"""Finding contents: full-text search, gated/free filters, sorts and pages, through the API
(PostgreSQL) and through the selector on the embedded SQLite database (FTS5)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from django.db import connection

from apps.content.models import Content, ContentStatus
from apps.content.search import INDEX_NAME, fts5_query
from tests.factories import ContentFactory, CreatorFactory
from tests.support.processes import ROOT

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/contents/"
GATE = {"type": "allowlist", "chain": "eip155:1", "addresses": [f"0x{'1' * 40}"]}


@pytest.fixture(autouse=True)
def _chains(settings):
    settings.CHAIN_RPC_URLS = {"eip155:1": "http://127.0.0.1:9/"}


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["results"]]


@pytest.fixture
def library():
    owner = CreatorFactory(username="ada")
    other = CreatorFactory(username="grace")
    ready = ContentStatus.READY
    return {
        "harbour": ContentFactory(
            owner=owner,
            status=ready,
            title="Harbour at dawn",
            description="Fishing boats leave while the lighthouse still turns.",
        ),
        "lighthouse": ContentFactory(
            owner=other,
            status=ready,
            title="Lighthouse keeper",
            description="A day with the keeper, encoded in 4K.",
            gate=GATE,
        ),
        "recipes": ContentFactory(
            owner=owner,
            status=ready,
            title="Bread recipes",
            description="Sourdough and rye, step by step.",
        ),
        "draft": ContentFactory(
            owner=owner, status=ContentStatus.DRAFT, title="Lighthouse draft", description=""
        ),
    }


def test_a_word_of_the_description_finds_the_video(api_client, library):
    assert titles(api_client.get(LIST_URL, {"search": "sourdough"})) == ["Bread recipes"]


def test_words_are_stemmed_and_the_title_ranks_first(api_client, library):
    # "lighthouses" stems to the word of both; the title's match outranks the description's.
    found = titles(api_client.get(LIST_URL, {"search": "lighthouses"}))
    assert found == ["Lighthouse keeper", "Harbour at dawn"]
    # "encoding" finds "encoded"; every word must match.
    assert titles(api_client.get(LIST_URL, {"search": "keeper encoding"})) == ["Lighthouse keeper"]
    assert titles(api_client.get(LIST_URL, {"search": "keeper sourdough"})) == []


def test_web_search_syntax(api_client, library):
    assert titles(api_client.get(LIST_URL, {"search": "lighthouse -keeper"})) == ["Harbour at dawn"]
    assert titles(api_client.get(LIST_URL, {"search": '"step by step"'})) == ["Bread recipes"]
    both = titles(api_client.get(LIST_URL, {"search": "rye or fishing", "sort": "title"}))
    assert both == ["Bread recipes", "Harbour at dawn"]
    # Punctuation alone, or a stray quote, is no error: it finds nothing, or what it can.
    assert titles(api_client.get(LIST_URL, {"search": "!!! ((("})) == []
    assert titles(api_client.get(LIST_URL, {"search": 'sourdough "'})) == ["Bread recipes"]


def test_search_sees_only_what_the_caller_may_see(api_client, client_for, library):
    assert "Lighthouse draft" not in titles(api_client.get(LIST_URL, {"search": "lighthouse"}))
    owner = library["draft"].owner
    mine = titles(client_for(owner).get(LIST_URL, {"search": "lighthouse", "owner": "me"}))
    assert sorted(mine) == ["Harbour at dawn", "Lighthouse draft"]


def test_gated_and_free_filters(api_client, library):
    assert titles(api_client.get(LIST_URL, {"gated": "true"})) == ["Lighthouse keeper"]
    free = titles(api_client.get(LIST_URL, {"gated": "false", "sort": "title"}))
    assert free == ["Bread recipes", "Harbour at dawn"]


def test_sorts_and_pages(api_client, library):
    by_title = titles(api_client.get(LIST_URL, {"sort": "title"}))
    assert by_title == ["Bread recipes", "Harbour at dawn", "Lighthouse keeper"]
    newest = titles(api_client.get(LIST_URL))
    assert newest == ["Bread recipes", "Lighthouse keeper", "Harbour at dawn"]
    assert titles(api_client.get(LIST_URL, {"sort": "oldest"})) == newest[::-1]
    first = api_client.get(LIST_URL, {"sort": "title", "page_size": 2}).json()
    assert first["count"] == 3
    assert [item["title"] for item in first["results"]] == by_title[:2]
    second = api_client.get(first["next"]).json()
    assert [item["title"] for item in second["results"]] == by_title[2:]


def test_a_nul_in_the_search_is_a_400_in_the_api(api_client, library):
    response = api_client.get(LIST_URL, {"search": "sour\x00dough"})
    assert response.status_code == 400
    assert "search" in response.json()


def test_creator_listing(api_client, library):
    assert titles(api_client.get(LIST_URL, {"owner": "grace"})) == ["Lighthouse keeper"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"sort": "loudest"}, "sort"),
        ({"gated": "maybe"}, "gated"),
        ({"search": "x" * 201}, "search"),
        ({"page": "9"}, None),
    ],
)
def test_bad_list_parameters_are_400_or_404_with_a_reason(api_client, library, query, field):
    response = api_client.get(LIST_URL, query)
    if field is None:
        assert response.status_code == 404  # a page past the end
        assert "page" in json.dumps(response.json()).lower()
        return
    assert response.status_code == 400
    assert field in json.dumps(response.json())


def test_an_edit_is_found_at_once(api_client, client_for, library):
    recipes = library["recipes"]
    assert titles(api_client.get(LIST_URL, {"search": "croissant"})) == []
    response = client_for(recipes.owner).patch(
        f"{LIST_URL}{recipes.id}/", {"description": "Now with croissants."}, format="json"
    )
    assert response.status_code == 200
    assert titles(api_client.get(LIST_URL, {"search": "croissant"})) == ["Bread recipes"]
    assert titles(api_client.get(LIST_URL, {"search": "sourdough"})) == []


def test_the_index_serves_the_search(library):
    """The planner uses the GIN index when scans are priced out: the selector's document is
    the indexed expression (a drift between the two would make every search a full scan)."""
    from apps.content.search import content_search

    query = content_search(Content.objects.all(), "lighthouse").values("id").query
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert INDEX_NAME in plan, plan


def test_fts5_query_reads_web_search_and_quotes_every_word():
    assert fts5_query('fish "boat" NEAR(x) AND') == '(("fish" AND "boat" AND "NEAR x" AND "AND"*))'
    assert fts5_query("Ünïcode café") == '(("Ünïcode" AND "café"*))'
    assert fts5_query("cats -dogs") == '(("cats"*)) NOT "dogs"'
    assert fts5_query("rye or fishing") == '(("rye") OR ("fishing"*))'
    assert fts5_query('"step by step" -"two words"') == '(("step by step")) NOT "two words"'
    assert fts5_query(' "" () * ') is None
    assert fts5_query("-dogs") is None  # nothing left to look for


SQLITE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from django.contrib.auth.models import AnonymousUser, User
    from django.db import connection
    from apps.content.models import Content
    from apps.content.selectors import content_list

    def found(text, **options):
        return [c.title for c in content_list(user=AnonymousUser(), search=text, **options)]

    step = sys.argv[1]
    if step == "write":
        owner = User.objects.create(username="ada")
        for title, description in [
            ("Harbour at dawn", "Fishing boats leave while the lighthouse still turns."),
            ("Lighthouse keeper", "A day with the keeper, encoded in 4K."),
            ("Bread recipes", "Sourdough and rye, step by step."),
        ]:
            Content.objects.create(owner=owner, title=title, description=description,
                                   status="ready")
        # A table rebuilt by a migration loses its triggers: a row written then...
        with connection.cursor() as cursor:
            for name in ("insert", "update", "delete"):
                cursor.execute(f"DROP TRIGGER content_search_{name}")
        Content.objects.create(owner=owner, title="Café crème", description="Written untracked",
                               status="ready")
    results = {
        "sourdough": found("sourdough"),
        "lighthouses": found("lighthouses"),
        "prefix": found("lightho"),
        "two words": found("keeper encoding"),
        "punctuation": found('"!" NEAR('),
        "cafe": found("cafe"),
        "gated": found("lighthouse", gated=True),
        "excluded": found("lighthouse -keeper"),
        "either": found("rye or fishing"),
        "phrase": found('"step by step"'),
    }
    if step == "write":
        Content.objects.filter(title="Bread recipes").update(description="Now with croissants")
        results["after edit"] = found("croissants")
    print(json.dumps(results))
    """
)


def test_sqlite_full_text_search(tmp_path):
    """The embedded database (make run's SQLite) searches with FTS5, and a ``migrate`` after a
    table rebuild restores the triggers and indexes the rows written meanwhile."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "streamgate.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "STREAMGATE_VAR_DIR": str(tmp_path),
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    run("manage.py", "migrate", "--noinput")
    before = json.loads(run("-c", SQLITE_SCRIPT, "write").splitlines()[-1])
    assert before["sourdough"] == ["Bread recipes"]
    assert before["lighthouses"] == ["Lighthouse keeper", "Harbour at dawn"]  # title first
    assert before["prefix"] == ["Lighthouse keeper", "Harbour at dawn"]
    assert before["two words"] == ["Lighthouse keeper"]
    assert before["punctuation"] == []
    assert before["cafe"] == []  # written while the triggers were away
    assert before["gated"] == []
    assert before["excluded"] == ["Harbour at dawn"]
    assert sorted(before["either"]) == ["Bread recipes", "Harbour at dawn"]
    assert before["phrase"] == ["Bread recipes"]
    assert before["after edit"] == []  # no update trigger either
    run("manage.py", "migrate", "--noinput")
    after = json.loads(run("-c", SQLITE_SCRIPT, "read").splitlines()[-1])
    assert after["cafe"] == ["Café crème"]  # diacritics folded, the row indexed
    assert after["sourdough"] == []
    assert after["lighthouses"] == ["Lighthouse keeper", "Harbour at dawn"]


def test_most_viewed_first(api_client, library):
    """``sort=views`` (registered by access) orders by the rolled-up count; none yet is 0."""
    from django.utils import timezone

    from apps.access.models import ContentViewStats

    for key, views in (("recipes", 3), ("harbour", 7)):
        ContentViewStats.objects.create(content=library[key], views=views, rolled_at=timezone.now())
    found = titles(api_client.get(LIST_URL, {"sort": "views"}))
    assert found == ["Harbour at dawn", "Bread recipes", "Lighthouse keeper"]
    assert [
        item["views"] for item in api_client.get(LIST_URL, {"sort": "views"}).json()["results"]
    ] == [7, 3, 0]
