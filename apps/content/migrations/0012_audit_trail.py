"""The audit trail (apps/content/audit.py) and, on PostgreSQL, the trigger that keeps it
append-only: UPDATE is refused, and DELETE too unless the transaction set
``streamgate.audit_purge`` (the retention purge does, for itself). A statement trigger: a
refused statement fails before touching a row, and the purge pays for one check, not one per
row. (TRUNCATE, which only the table's owner may run, stays possible: the test suite's flush.)
On SQLite the model's Python guard alone stands."""

import django.core.serializers.json
import django.utils.timezone
from django.db import migrations, models

TABLE = "content_auditevent"
INSTALL = f"""
CREATE OR REPLACE FUNCTION streamgate_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('streamgate.audit_purge', true), '') = 'on'
    THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
DROP TRIGGER IF EXISTS streamgate_audit_append_only ON {TABLE};
CREATE TRIGGER streamgate_audit_append_only BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION streamgate_audit_append_only();
"""
UNINSTALL = f"""
DROP TRIGGER IF EXISTS streamgate_audit_append_only ON {TABLE};
DROP FUNCTION IF EXISTS streamgate_audit_append_only();
"""


def _on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("content", "0011_outbox_trace_context"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                (
                    "event",
                    models.CharField(
                        help_text="Dotted name, e.g. auth.signin.succeeded.", max_length=64
                    ),
                ),
                (
                    "actor_kind",
                    models.CharField(
                        choices=[
                            ("user", "User"),
                            ("anonymous", "Anonymous client"),
                            ("command", "Management command"),
                            ("system", "System (task, indexer)"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "actor",
                    models.CharField(
                        help_text="Username, command name, task name, or 'anonymous'.",
                        max_length=200,
                    ),
                ),
                ("actor_user_id", models.BigIntegerField(blank=True, null=True)),
                ("client_address", models.GenericIPAddressField(blank=True, null=True)),
                ("request_id", models.CharField(blank=True, max_length=64)),
                (
                    "target_type",
                    models.CharField(blank=True, help_text="app_label.model", max_length=64),
                ),
                ("target_id", models.CharField(blank=True, max_length=64)),
                (
                    "details",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                    ),
                ),
            ],
            options={
                "ordering": ["-at", "-id"],
                "indexes": [
                    models.Index(fields=["event", "at"], name="audit_event_at"),
                    models.Index(fields=["target_type", "target_id"], name="audit_target"),
                    models.Index(fields=["actor_user_id", "at"], name="audit_actor_user"),
                    models.Index(fields=["request_id"], name="audit_request"),
                ],
            },
        ),
        migrations.RunPython(_on_postgresql(INSTALL), _on_postgresql(UNINSTALL)),
    ]
