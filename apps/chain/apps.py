from django.apps import AppConfig


class ChainConfig(AppConfig):
    name = "apps.chain"
    label = "chain"
    verbose_name = "Chain: contracts and indexer"

    def ready(self) -> None:
        # Imported here, not at the top: models and what imports them load after the app registry.
        from django.db.models.signals import post_delete, post_save

        from apps.chain.api.serializers import IpfsField, OnchainField
        from apps.chain.models import ChainContract, Pin, Registration
        from apps.content.cache import content_api_changed
        from apps.content.extensions import output_field_register

        # A content's JSON shows its registration and pin (apps.content.extensions).
        output_field_register("onchain", OnchainField, prefetch=("registrations__contract",))
        output_field_register("ipfs", IpfsField, prefetch=("pins",))

        def changed(**_):
            content_api_changed()

        # They are part of a content's JSON; bulk writes are caught by their QuerySets.
        for model in (Registration, Pin, ChainContract):
            post_save.connect(changed, sender=model, weak=False)
            post_delete.connect(changed, sender=model, weak=False)
