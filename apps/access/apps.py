from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "apps.access"
    label = "access"
    verbose_name = "Access: identities, tokens and gates"

    def ready(self) -> None:
        # Imported here, not at the top: models and what imports them load after the app registry.
        from apps.access import schema  # noqa: F401 - registers the OpenAPI auth extension
        from apps.access.receivers import on_nft_transfer
        from apps.chain.signals import nft_transfer_seen

        nft_transfer_seen.connect(on_nft_transfer, dispatch_uid="access.on_nft_transfer")

        from apps.access.selectors import gate_normal_form
        from apps.content.extensions import gate_normalizer_register

        # Content checks a gate through the core's extension point; access decides what is valid.
        gate_normalizer_register(gate_normal_form)

        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from apps.access.auth_version import (
            on_token_deleted,
            on_token_saved,
            on_user_deleted,
            on_user_saved,
        )
        from apps.access.models import ApiToken

        post_save.connect(on_token_saved, sender=ApiToken, dispatch_uid="access.token_saved")
        post_delete.connect(on_token_deleted, sender=ApiToken, dispatch_uid="access.token_deleted")
        user = get_user_model()
        post_save.connect(on_user_saved, sender=user, dispatch_uid="access.user_saved")
        post_delete.connect(on_user_deleted, sender=user, dispatch_uid="access.user_deleted")
