from django.apps import AppConfig


class ContentConfig(AppConfig):
    name = "apps.content"
    label = "content"
    verbose_name = "Content"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from apps.chain.models import ChainContract, Pin, Registration
        from apps.content.cache import content_api_changed
        from apps.content.models import Content, Rendition

        def changed(**_):
            content_api_changed()

        # Everything a content's JSON shows; bulk writes are caught by their QuerySets.
        for model in (Content, Rendition, Registration, Pin, ChainContract):
            post_save.connect(changed, sender=model, weak=False)
            post_delete.connect(changed, sender=model, weak=False)
