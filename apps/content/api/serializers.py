"""Content API shapes. Input and output serializers are kept apart.

Other apps add to a content's JSON and check its gate through ``apps.content.extensions``:
chain contributes ``onchain`` and ``ipfs``, access the gate check behind ``GateField``."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.content.extensions import GateInvalid, gate_normalize, output_fields
from apps.content.models import Caption, Content, ContentStatus, Rendition
from apps.content.selectors import (
    content_playable_seconds,
    content_retryable,
    poster_url,
    sort_choices,
)


class RenditionOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Rendition
        fields = ["name", "width", "height", "bitrate", "codecs"]


class CaptionOutputSerializer(serializers.ModelSerializer):
    """A caption as players and editors see it. No URL: the files are served beside the
    video, under each viewer's playback token, and listed in the HLS and DASH manifests."""

    class Meta:
        model = Caption
        fields = ["id", "language", "label"]


class ContentOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    renditions = RenditionOutputSerializer(many=True, read_only=True)
    captions = CaptionOutputSerializer(many=True, read_only=True)
    thumbnail_url = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    retryable = serializers.SerializerMethodField()
    playable = serializers.SerializerMethodField()
    playable_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Content
        fields = [
            "id",
            "title",
            "description",
            "owner",
            "status",
            "progress",
            "overall_progress",
            "duration",
            "playable",
            "playable_seconds",
            "width",
            "height",
            "renditions",
            "captions",
            "thumbnail_url",
            "gate",
            "error",
            "error_kind",
            "retryable",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_thumbnail_url(self, content: Content) -> str | None:
        path = poster_url(content)
        if path is None:
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, content: Content) -> str | None:
        return content.error or None

    @extend_schema_field(serializers.BooleanField())
    def get_playable(self, content: Content) -> bool:
        """True when playback can start: ready, or a long video still processing whose first
        chunks are published."""
        return content_playable_seconds(content) is not None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_playable_seconds(self, content: Content) -> float | None:
        """How much can be watched now: all of a ready video; while processing, the chunks
        published so far (it grows); null when nothing can be."""
        return content_playable_seconds(content)

    @extend_schema_field(serializers.BooleanField())
    def get_retryable(self, content: Content) -> bool:
        """True when the content failed and encoding it again can help (not for a file that
        cannot be used: that needs a new upload)."""
        return content_retryable(content)

    def get_fields(self):
        """The declared fields, with those other apps contribute before the timestamps."""
        fields = super().get_fields()
        timestamps = {name: fields.pop(name) for name in ("created_at", "updated_at")}
        return {**fields, **output_fields(), **timestamps}


class GateField(serializers.JSONField):
    """A gate rule (see the README), or null for content anyone may watch. Stored in its normal
    form: checksummed addresses, token ids and balances as decimal strings."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return gate_normalize(value)
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
    search = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="Words of the title or description; quotes, 'or' and -word as in web search.",
    )
    gated = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: gated only; false: free."
    )
    sort = serializers.ChoiceField(choices=[], required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read at each request: other apps register their sorts once started.
        self.fields["sort"].choices = list(sort_choices().items())
