from django.apps import AppConfig


class ChainConfig(AppConfig):
    name = "apps.chain"
    label = "chain"
    verbose_name = "Chain: contracts and indexer"
