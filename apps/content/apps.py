from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


class ContentConfig(AppConfig):
    name = "apps.content"
    label = "content"
    verbose_name = "Content"

    def ready(self) -> None:
        # Imported here, not at the top: what imports models loads after the app registry.
        # (Cached pages need no wiring: PostgreSQL moves their versions, streamgate/versions.py.)
        from apps.content.storage import storage_ping
        from streamgate.health import readiness_check_register

        readiness_check_register("storage", storage_ping)
        post_migrate.connect(_sqlite_search_install, sender=self)


def _sqlite_search_install(sender, using: str, **kwargs) -> None:
    """SQLite's full-text table and triggers, made (again) after every migrate."""
    from apps.content.models import Content
    from apps.content.search import sqlite_search_install

    database = connections[using]
    if database.vendor == "sqlite":
        sqlite_search_install(database, Content._meta.db_table)
