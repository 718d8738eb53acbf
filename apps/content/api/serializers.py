"""Content API shapes. Input and output serializers are kept apart."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.access.gates import GateInvalid, gate_validate
from apps.access.selectors import gate_chains
from apps.chain.selectors import ipfs_summary, onchain_summary
from apps.content.models import Content, ContentStatus, Rendition


class RenditionOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Rendition
        fields = ["name", "width", "height", "bitrate", "codecs"]


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


class ContentOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    renditions = RenditionOutputSerializer(many=True, read_only=True)
    thumbnail_url = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    onchain = serializers.SerializerMethodField()
    ipfs = serializers.SerializerMethodField()

    class Meta:
        model = Content
        fields = [
            "id",
            "title",
            "description",
            "owner",
            "status",
            "progress",
            "duration",
            "width",
            "height",
            "renditions",
            "thumbnail_url",
            "gate",
            "error",
            "onchain",
            "ipfs",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_thumbnail_url(self, content: Content) -> str | None:
        if not content.poster:
            return None
        path = f"/posters/{content.id}.jpg"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, content: Content) -> str | None:
        return content.error or None

    @extend_schema_field(OnchainOutputSerializer(allow_null=True))
    def get_onchain(self, content: Content) -> dict | None:
        return onchain_summary(content)

    @extend_schema_field(IpfsOutputSerializer(allow_null=True))
    def get_ipfs(self, content: Content) -> dict | None:
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


class GateField(serializers.JSONField):
    """A gate rule (see the README), or null for content anyone may watch. Stored in its normal
    form: checksummed addresses, token ids and balances as decimal strings."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return gate_validate(value, chains=gate_chains())
        except GateInvalid as error:
            raise serializers.ValidationError(
                {"path": error.path, "detail": error.message}
            ) from None


class ContentCreateInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, default=""
    )
    gate = GateField(required=False, allow_null=True, default=None)


class ContentUpdateInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    gate = GateField(required=False, allow_null=True)


class ContentListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ContentStatus.choices, required=False)
    owner = serializers.CharField(
        max_length=150, required=False, help_text="A username, or 'me' for your own contents."
    )
