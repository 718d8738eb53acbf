from django.apps import AppConfig


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
