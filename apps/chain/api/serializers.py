"""Chain API shapes: the register action's input, and the ``onchain`` and ``ipfs`` fields the
chain app adds to a content's JSON (registered in ChainConfig.ready())."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.chain.selectors import ipfs_summary, onchain_summary


class OnchainOutputSerializer(serializers.Serializer):
    chain = serializers.CharField()
    contract = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["pending", "waiting_gas", "submitted", "confirmed", "failed"]
    )
    tx_hash = serializers.CharField(allow_null=True)
    block = serializers.IntegerField(allow_null=True)
    cid = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class IpfsOutputSerializer(serializers.Serializer):
    cid = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["queued", "pinning", "pinned", "failed"])
    error = serializers.CharField(allow_null=True)


class _ContentSummaryField(serializers.Field):
    """A read-only field computed from the whole content."""

    def __init__(self, **kwargs) -> None:
        super().__init__(source="*", read_only=True, **kwargs)


@extend_schema_field(OnchainOutputSerializer(allow_null=True))
class OnchainField(_ContentSummaryField):
    def to_representation(self, content) -> dict | None:
        return onchain_summary(content)


@extend_schema_field(IpfsOutputSerializer(allow_null=True))
class IpfsField(_ContentSummaryField):
    def to_representation(self, content) -> dict | None:
        return ipfs_summary(content)


class RegisterInputSerializer(serializers.Serializer):
    # ASCII digits, as many as a chain id has: "\d+" let through "٣" and 5,000 digits (which
    # int() refuses). "$", unlike "\Z", is also valid in the OpenAPI schema's ECMA regex.
    chain = serializers.RegexField(
        r"^eip155:[1-9][0-9]{0,17}$", help_text="CAIP-2 id of an EVM chain."
    )
    price = serializers.IntegerField(
        min_value=0, max_value=2**256 - 1, default=0, help_text="In wei (a uint256)."
    )
