"""Full-text search over contents' titles and descriptions, in whichever database holds them.

PostgreSQL: a weighted document (title weight A, description B) in the ``english`` text search
configuration (so "encoding" finds "encoded"), matched with ``websearch_to_tsquery`` (quotes,
``or`` and ``-word`` as people type them into a search box) and ordered by ``ts_rank``. An
expression GIN index over the very same document serves the match (migration 0007); the
document's SQL is written once, here, and a test checks the planner uses the index.

SQLite (the embedded ``make run``): an FTS5 table over the same two columns, kept by triggers,
ordered by ``bm25`` with the title weighted ten to one, and the same search syntax translated
into FTS5's (``fts5_query``). Django's search support is PostgreSQL's
only, so this half is ours. Django rebuilds an SQLite table to alter it, which drops its
triggers, so the table and triggers are (re)made after every ``migrate``, not by a migration.
People's words never reach FTS5's query language as syntax: each word is quoted (a stray quote
or ``NEAR`` would otherwise be an error); only our own AND, OR and NOT join them.
"""

import re

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, FloatField, QuerySet
from django.db.models.expressions import RawSQL

CONFIG = "english"


def document(table: str = "") -> str:
    """The searched document's SQL, its columns qualified by ``table`` when given. The GIN
    index of migration 0007 is built from this same text (unqualified)."""
    prefix = f'"{table}".' if table else ""
    return (
        f"setweight(to_tsvector('{CONFIG}'::regconfig, coalesce({prefix}title, '')), 'A') || "
        f"setweight(to_tsvector('{CONFIG}'::regconfig, coalesce({prefix}description, '')), 'B')"
    )


INDEX_NAME = "content_search_document"

FTS_TABLE = "content_search"
# Words as FTS5's unicode61 tokenizer sees them: letters and digits, anything else separates.
_WORD = re.compile(r"\w+", re.UNICODE)
# More words than this add nothing a person means; they would only make the query longer.
MAX_WORDS = 32


def content_search(contents: QuerySet, text: str) -> QuerySet:
    """``contents`` that match ``text``, annotated with ``search_rank`` (higher is better).
    Text without a single word matches nothing."""
    table = contents.model._meta.db_table
    if connection.vendor == "postgresql":
        searched = document(table)
        query = f"websearch_to_tsquery('{CONFIG}'::regconfig, %s)"
        return contents.filter(
            RawSQL(f"({searched}) @@ {query}", (text,), output_field=BooleanField())
        ).annotate(
            search_rank=RawSQL(f"ts_rank({searched}, {query})", (text,), output_field=FloatField())
        )
    match = fts5_query(text)
    if match is None:
        return contents.none()
    # bm25 is lower for a better match; negated, so higher is better as on PostgreSQL.
    rank = (
        f"SELECT -bm25({FTS_TABLE}, 10.0, 1.0) FROM {FTS_TABLE} "
        f"WHERE {FTS_TABLE} MATCH %s AND {FTS_TABLE}.rowid = {table}.rowid"
    )
    return contents.filter(
        RawSQL(
            f"{table}.rowid IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s)",
            (match,),
            output_field=BooleanField(),
        )
    ).annotate(search_rank=RawSQL(rank, (match,), output_field=FloatField()))


# A phrase in quotes, or a run of anything else up to the next space or quote.
_TERM = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def fts5_query(text: str) -> str | None:
    """``text`` as an FTS5 query that reads it as PostgreSQL's ``websearch_to_tsquery`` does:
    every word required, ``"a phrase"``, ``or`` between alternatives, ``-word`` excluded; the
    last bare word also matches as a prefix (a word still being typed). None when nothing is
    left to look for (no word, or only exclusions). Each word is quoted: no input can be FTS5
    syntax."""
    groups: list[list[str]] = [[]]  # OR of ANDs
    excluded: list[str] = []
    last_bare: tuple[list[str], int] | None = None
    joined = False
    for match in _TERM.finditer(text):
        if len(excluded) + sum(map(len, groups)) >= MAX_WORDS:
            break
        negated, phrase, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None and bare.lower() == "or":
            joined = bool(groups[-1])
            continue
        if bare is not None and bare.startswith("-") and len(bare) > 1:
            negated, bare = "-", bare[1:]
        words = _WORD.findall(phrase if phrase is not None else bare)
        if not words:
            continue
        term = '"' + " ".join(words) + '"'  # \w+ holds no quote to escape
        if negated:
            excluded.append(term)
            continue
        if joined:
            groups.append([])
            joined = False
        groups[-1].append(term)
        last_bare = (groups[-1], len(groups[-1]) - 1) if bare is not None else None
    groups = [group for group in groups if group]
    if not groups:
        return None
    if last_bare is not None:
        group, index = last_bare
        group[index] += "*"
    query = " OR ".join("(" + " AND ".join(group) + ")" for group in groups)
    return "(" + query + ")" + "".join(f" NOT {term}" for term in excluded)


def sqlite_search_install(database: BaseDatabaseWrapper, table: str) -> None:
    """Make the FTS5 table and its triggers for ``table`` (the content table) if they are
    missing, and rebuild the index from the table's rows. Idempotent; SQLite only."""
    statements = [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(title, description, "
        f"content='{table}', content_rowid='rowid', "
        "tokenize='porter unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_insert AFTER INSERT ON {table} BEGIN "
        f"INSERT INTO {FTS_TABLE}(rowid, title, description) "
        "VALUES (new.rowid, new.title, new.description); END",
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_delete AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, description) "
        "VALUES ('delete', old.rowid, old.title, old.description); END",
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_update AFTER UPDATE OF title, description "
        f"ON {table} BEGIN "
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, description) "
        "VALUES ('delete', old.rowid, old.title, old.description); "
        f"INSERT INTO {FTS_TABLE}(rowid, title, description) "
        "VALUES (new.rowid, new.title, new.description); END",
        # Rows written while the triggers were away (a table rebuilt by a migration) count too.
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
    ]
    with database.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
