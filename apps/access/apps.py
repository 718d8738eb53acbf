from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "apps.access"
    label = "access"
    verbose_name = "Access: identities, tokens and gates"

    def ready(self) -> None:
        # Imported here, not at the top: models and what imports them load after the app registry.
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from apps.access import schema  # noqa: F401 - registers the OpenAPI auth extension
        from apps.access.receivers import (
            on_nft_transfer,
            on_password_signed_in,
            on_password_signin_failed,
            on_registry_access_changed,
            on_user_logged_in,
        )
        from apps.access.selectors import user_evm_addresses
        from apps.chain.accounts import wallet_lookup_register
        from apps.chain.signals import nft_transfer_seen, registry_access_changed

        nft_transfer_seen.connect(on_nft_transfer, dispatch_uid="access.on_nft_transfer")
        registry_access_changed.connect(
            on_registry_access_changed, dispatch_uid="access.on_registry_access_changed"
        )
        # The chain app finds creators' and buyers' addresses through the wallets kept here.
        wallet_lookup_register(user_evm_addresses)
        user_logged_in.connect(on_user_logged_in, dispatch_uid="access.on_user_logged_in")
        # The audit trail's password sign-ins (wallet sign-ins are recorded by their service).
        user_logged_in.connect(on_password_signed_in, dispatch_uid="access.audit.signed_in")
        user_login_failed.connect(on_password_signin_failed, dispatch_uid="access.audit.failed")

        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from apps.access.models import WalletAccount
        from apps.access.receivers import on_content_written, on_viewer_written
        from apps.content.models import Content
        from apps.transcode.models import DeliveryEncryption

        # Remembered key decisions read these rows (apps/access/key_decisions.py).
        for signal in (post_save, post_delete):
            for model in (Content, DeliveryEncryption):
                signal.connect(
                    on_content_written, sender=model, dispatch_uid=f"access.keys.{model}"
                )
            for model in (get_user_model(), WalletAccount):
                signal.connect(on_viewer_written, sender=model, dispatch_uid=f"access.keys.{model}")

        from apps.access.api.serializers import ViewsField
        from apps.access.selectors import content_order_by_views, gate_normal_form
        from apps.content.extensions import (
            gate_normalizer_register,
            list_sort_register,
            output_field_register,
        )

        # Content checks a gate through the core's extension point; access decides what is valid.
        gate_normalizer_register(gate_normal_form)
        # A content's JSON shows its views, rolled up every minute (apps/access/audience.py).
        output_field_register("views", ViewsField, prefetch=("view_stats",))
        # ... and lists may be ordered by them (?sort=views).
        list_sort_register("views", "Most viewed", content_order_by_views)
