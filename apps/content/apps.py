from django.apps import AppConfig


class ContentConfig(AppConfig):
    name = "apps.content"
    label = "content"
    verbose_name = "Content"

    def ready(self) -> None:
        # Imported here, not at the top: models load after the app registry.
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from apps.content.cache import content_api_changed
        from apps.content.models import Content, Rendition

        def changed(**_):
            content_api_changed()

        # Everything a content's JSON shows (chain wires its own models); bulk writes are
        # caught by their QuerySets.
        for model in (Content, Rendition):
            post_save.connect(changed, sender=model, weak=False)
            post_delete.connect(changed, sender=model, weak=False)

        def user_saved(*, created: bool, update_fields=None, **_):
            # Contents show their owner's username (and can be listed by it); a login's time
            # and a new user change nothing shown.
            if not created and set(update_fields or ()) != {"last_login"}:
                content_api_changed()

        post_save.connect(user_saved, sender=get_user_model(), weak=False)

        from apps.content.storage import storage_ping
        from streamgate.health import readiness_check_register

        readiness_check_register("storage", storage_ping)
