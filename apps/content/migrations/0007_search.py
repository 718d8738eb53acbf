"""Full-text search (apps/content/search.py): on PostgreSQL, a GIN index over the searched
document. SQLite's FTS5 table is made after every migrate instead (see search.py: a table
rebuilt by a later migration loses its triggers)."""

from django.db import migrations

from apps.content.search import INDEX_NAME, document


def _on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


CREATE = f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON content_content USING gin (({document()}))"
DROP = f"DROP INDEX IF EXISTS {INDEX_NAME}"


class Migration(migrations.Migration):
    dependencies = [("content", "0006_cache_versions")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
