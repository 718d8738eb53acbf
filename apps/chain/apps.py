from django.apps import AppConfig


class ChainConfig(AppConfig):
    name = "apps.chain"
    label = "chain"
    verbose_name = "Chain: contracts and indexer"

    def ready(self) -> None:
        # Imported here, not at the top: models and what imports them load after the app registry.
        from apps.chain.api.serializers import IpfsField, OffersField, OnchainField
        from apps.content.extensions import output_field_register

        # A content's JSON shows its registration and pin (apps.content.extensions).
        output_field_register("onchain", OnchainField, prefetch=("registrations__contract",))
        output_field_register("ipfs", IpfsField, prefetch=("pins",))
        # ... and the offers buyers can take (apps/chain/offers.py).
        output_field_register("offers", OffersField, prefetch=("offer_sets__offers",))
        # The nonce-healing counter at 0 for each configured EVM chain (its alert needs it).
        from apps.chain.nonces import nonce_series_start
        from streamgate.metrics import series_starter_register

        series_starter_register("signer_nonce", nonce_series_start)
