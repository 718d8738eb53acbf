"""Chain API shapes: the register action's input, and the ``onchain`` and ``ipfs`` fields the
chain app adds to a content's JSON (registered in ChainConfig.ready())."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.chain.selectors import ipfs_summary, offers_summary, onchain_summary


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


class CurrencyOutputSerializer(serializers.Serializer):
    address = serializers.CharField(allow_null=True, help_text="null for the native coin")
    symbol = serializers.CharField()
    decimals = serializers.IntegerField()


class OfferOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    chain = serializers.CharField()
    kind = serializers.ChoiceField(choices=["purchase", "rental", "membership"])
    currency = CurrencyOutputSerializer()
    amount = serializers.CharField(help_text="In the currency's smallest unit (decimal string).")
    period_seconds = serializers.IntegerField(help_text="0 for a purchase (for ever).")


@extend_schema_field(OfferOutputSerializer(many=True))
class OffersField(_ContentSummaryField):
    def to_representation(self, content) -> list:
        return offers_summary(content)


class OfferInputSerializer(serializers.Serializer):
    chain = serializers.CharField(help_text="CAIP-2 id of an EVM chain with our registry.")
    kind = serializers.ChoiceField(choices=["purchase", "rental", "membership"])
    currency = serializers.CharField(
        allow_null=True, help_text="ERC-20 address, or null for the native coin."
    )
    amount = serializers.CharField(help_text="Smallest unit, decimal string.")
    period_seconds = serializers.IntegerField(required=False, default=0)


class OffersInputSerializer(serializers.Serializer):
    """Documentation only: the service checks the body (one message per offer at fault)."""

    offers = OfferInputSerializer(many=True)
    chain = serializers.CharField(required=False, help_text="Needed when offers is empty.")
    signature = serializers.CharField(
        required=False, help_text="The creator wallet's signature of the 202's typed_data."
    )


class OfferSetOutputSerializer(serializers.Serializer):
    chain = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["unsigned", "relaying", "submitted", "live", "superseded", "failed"]
    )
    tx_hash = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    offers = OfferOutputSerializer(many=True)


class TypedDataOutputSerializer(serializers.Serializer):
    typed_data = serializers.JSONField(help_text="EIP-712, as eth_signTypedData_v4 takes it.")
    signer = serializers.CharField(required=False)
    deadline = serializers.IntegerField(required=False)


class TransactionOutputSerializer(serializers.Serializer):
    chainId = serializers.CharField(help_text="Hex, e.g. 0x1.")  # noqa: N815 - EIP-1193's name
    to = serializers.CharField()
    data = serializers.CharField()
    value = serializers.CharField(help_text="Hex wei.")


class PurchaseInputSerializer(serializers.Serializer):
    offer = serializers.IntegerField()
    account = serializers.CharField(required=False, help_text="Which linked wallet buys.")
    permit = serializers.BooleanField(required=False, default=False)
    signature = serializers.CharField(required=False, help_text="The permit's signature.")
    deadline = serializers.IntegerField(required=False, help_text="The permit's deadline.")


class PurchaseStatusOutputSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["pending", "mined", "confirmed", "indexed", "failed"])
    chain = serializers.CharField(allow_null=True)
    confirmations = serializers.IntegerField(allow_null=True)
    playable = serializers.BooleanField()


class WithdrawInputSerializer(serializers.Serializer):
    chain = serializers.CharField()
    currency = serializers.CharField(allow_null=True)


class PayoutInputSerializer(serializers.Serializer):
    chain = serializers.CharField()
    payout = serializers.CharField(help_text="Where withdrawals of your proceeds go.")
    account = serializers.CharField(required=False, help_text="Which creator address, if several.")
    signature = serializers.CharField(required=False)


class PayoutOutputSerializer(serializers.Serializer):
    chain = serializers.CharField()
    account = serializers.CharField()
    payout = serializers.CharField()
    status = serializers.CharField()
    tx_hash = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class RegisterInputSerializer(serializers.Serializer):
    # ASCII digits, as many as a chain id has: "\d+" let through "٣" and 5,000 digits (which
    # int() refuses). "$", unlike "\Z", is also valid in the OpenAPI schema's ECMA regex.
    chain = serializers.RegexField(
        r"^eip155:[1-9][0-9]{0,17}$", help_text="CAIP-2 id of an EVM chain."
    )
    price = serializers.IntegerField(
        min_value=0, max_value=2**256 - 1, default=0, help_text="In wei (a uint256)."
    )
