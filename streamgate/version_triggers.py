"""The PostgreSQL side of ``streamgate.versions``: the version table, its functions, and the
migration operation with which an app puts a table under watch.

An app's migration calls ``version_table()`` once (content's does) and ``watch(...)`` for each
of its tables whose rows a cached answer shows, naming the scope a change moves. On SQLite the
operations do nothing (nothing is cached there).
"""

from django.db import migrations

from streamgate.versions import AUTH, PUBLIC, SEQUENCE, TABLE

# The deferred trigger that bumps the noted scopes at commit (one per watched table).
PUSH_TRIGGER = "streamgate_cache_push"
# Scopes noted so far in this transaction, as ",a,b": transaction-local, so a rollback drops it.
_PENDING = "streamgate.cache_scopes"

INSTALL = f"""
CREATE SEQUENCE IF NOT EXISTS {SEQUENCE};
CREATE TABLE IF NOT EXISTS {TABLE} (scope text PRIMARY KEY, version bigint NOT NULL);
INSERT INTO {TABLE} (scope, version)
    SELECT scope, nextval('{SEQUENCE}') FROM unnest(ARRAY['{PUBLIC}', '{AUTH}']) AS scope
    ON CONFLICT (scope) DO NOTHING;

-- Note scopes to bump when this transaction commits.
CREATE OR REPLACE FUNCTION streamgate_cache_note(scopes text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    pending text := coalesce(current_setting('{_PENDING}', true), '');
    scope text;
BEGIN
    FOREACH scope IN ARRAY scopes LOOP
        IF position(',' || scope || ',' IN pending || ',') = 0 THEN
            pending := pending || ',' || scope;
        END IF;
    END LOOP;
    PERFORM set_config('{_PENDING}', pending, true);
END $$;

-- Deferred to the commit: bump every noted scope once, in sorted order.
CREATE OR REPLACE FUNCTION streamgate_cache_flush() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    pending text := coalesce(current_setting('{_PENDING}', true), '');
BEGIN
    IF pending <> '' THEN
        PERFORM set_config('{_PENDING}', '', true);
        INSERT INTO {TABLE} (scope, version)
            SELECT scope, nextval('{SEQUENCE}')
            FROM (SELECT DISTINCT scope FROM unnest(string_to_array(pending, ',')) AS scope
                  WHERE scope <> '' ORDER BY scope) AS sorted
            ON CONFLICT (scope) DO UPDATE SET version = EXCLUDED.version;
    END IF;
    RETURN NULL;
END $$;

-- A TRUNCATE of a watched table: every scope moves.
CREATE OR REPLACE FUNCTION streamgate_cache_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {TABLE} SET version = nextval('{SEQUENCE}');
    RETURN NULL;
END $$;

-- A row whose change moves one scope: TG_ARGV[0]; the other arguments name columns whose
-- change alone no cached answer shows (bookkeeping such as a token's last use).
CREATE OR REPLACE FUNCTION streamgate_cache_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    quiet text[] := TG_ARGV[1:TG_NARGS - 1];
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - quiet) = (to_jsonb(NEW) - quiet) THEN
        RETURN NULL;
    END IF;
    PERFORM streamgate_cache_note(ARRAY[TG_ARGV[0]]);
    RETURN NULL;
END $$;

-- A content row: a ready content (before or after the change) is everyone's; any other only
-- its owner's (an upload's progress, written several times a second).
CREATE OR REPLACE FUNCTION streamgate_cache_content() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND to_jsonb(OLD) = to_jsonb(NEW) THEN
        RETURN NULL;
    END IF;
    IF (TG_OP <> 'INSERT' AND OLD.status = 'ready') OR (TG_OP <> 'DELETE' AND NEW.status = 'ready')
    THEN
        PERFORM streamgate_cache_note(ARRAY['{PUBLIC}']);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM streamgate_cache_note(ARRAY['owner:' || NEW.owner_id]);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM streamgate_cache_note(ARRAY['owner:' || OLD.owner_id]);
    ELSE
        PERFORM streamgate_cache_note(ARRAY['owner:' || OLD.owner_id, 'owner:' || NEW.owner_id]);
    END IF;
    RETURN NULL;
END $$;
"""  # noqa: S608 - built from our own constants, no input

UNINSTALL = f"""
DROP FUNCTION IF EXISTS streamgate_cache_content() CASCADE;
DROP FUNCTION IF EXISTS streamgate_cache_row() CASCADE;
DROP FUNCTION IF EXISTS streamgate_cache_truncated() CASCADE;
DROP FUNCTION IF EXISTS streamgate_cache_flush() CASCADE;
DROP FUNCTION IF EXISTS streamgate_cache_note(text[]);
DROP TABLE IF EXISTS {TABLE};
DROP SEQUENCE IF EXISTS {SEQUENCE};
"""


def _execute(schema_editor, sql: str) -> None:
    """Several statements at once, so without parameters (psycopg then sends them as one)."""
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)


def _on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        _execute(schema_editor, sql)

    return run


def version_table() -> migrations.RunPython:
    """The table, its sequence and the trigger functions (content's migration installs them)."""
    return migrations.RunPython(_on_postgresql(INSTALL), _on_postgresql(UNINSTALL))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def watch_sql(
    table: str, *, name: str, events: str, scope: str | None = None, quiet: tuple[str, ...] = ()
) -> tuple[str, str]:
    """SQL that puts ``table`` under watch, and SQL that takes it off. ``scope`` None: the
    content rule (``streamgate_cache_content``); else the scope every change moves, except a
    change of ``quiet`` columns alone. ``events``: e.g. "INSERT OR UPDATE OR DELETE"."""
    if scope is None:
        call = "streamgate_cache_content()"
    else:
        call = f"streamgate_cache_row({', '.join(_literal(a) for a in (scope, *quiet))})"
    # Row triggers of one event fire in the order of their names: the notes before the push
    # (which matters where the push is made immediate, as in tests: SET CONSTRAINTS).
    note = f"streamgate_cache_note_{name}"
    forward = f"""
        DROP TRIGGER IF EXISTS {note} ON {table};
        CREATE TRIGGER {note} AFTER {events} ON {table}
            FOR EACH ROW EXECUTE FUNCTION {call};
        DROP TRIGGER IF EXISTS {PUSH_TRIGGER} ON {table};
        CREATE CONSTRAINT TRIGGER {PUSH_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION streamgate_cache_flush();
        DROP TRIGGER IF EXISTS streamgate_cache_truncated ON {table};
        CREATE TRIGGER streamgate_cache_truncated AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION streamgate_cache_truncated();
    """
    backward = f"DROP TRIGGER IF EXISTS {note} ON {table};"
    return forward, backward


def watch(
    app_label: str,
    model: str,
    *,
    name: str,
    events: str = "INSERT OR UPDATE OR DELETE",
    scope: str | None = None,
    quiet: tuple[str, ...] = (),
) -> migrations.RunPython:
    """A migration operation: changes to ``app_label.model``'s rows move ``scope`` (see
    ``watch_sql``); ``name`` tells this watch from another on the same table."""

    def table(apps) -> str:
        return apps.get_model(app_label, model)._meta.db_table

    def forward(apps, schema_editor) -> None:
        sql, _ = watch_sql(table(apps), name=name, events=events, scope=scope, quiet=quiet)
        _execute(schema_editor, sql)

    def backward(apps, schema_editor) -> None:
        _, sql = watch_sql(table(apps), name=name, events=events, scope=scope, quiet=quiet)
        _execute(schema_editor, sql)

    return migrations.RunPython(forward, backward)
