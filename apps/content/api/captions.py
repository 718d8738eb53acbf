"""Captions of a content: ``POST /api/v1/contents/<id>/captions/`` (multipart: ``file``,
``language``, ``label``) and ``DELETE /api/v1/contents/<id>/captions/<caption id>/``, by the
content's owner or staff. The content's JSON lists them (``captions``)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.content.api.actions import ContentActionView
from apps.content.api.serializers import CaptionOutputSerializer
from apps.content.caption_files import MAX_CAPTION_BYTES
from apps.content.selectors import caption_get
from apps.content.services import caption_create, caption_delete


class CaptionCreateInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="WebVTT or SRT, UTF-8, at most 1 MiB.")
    language = serializers.CharField(
        max_length=100, allow_blank=True, help_text="BCP 47 tag, e.g. en or pt-BR."
    )
    label = serializers.CharField(
        max_length=1000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Shown in players' menus; the language's name when empty.",
    )


# Add captions in one language (owner or staff).
class CaptionListView(ContentActionView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Upload captions (WebVTT or SRT) in one language (owner or staff)",
        request={"multipart/form-data": CaptionCreateInputSerializer},
        responses={201: CaptionOutputSerializer, 400: None, 409: None, 503: None},
    )
    def post(self, request: Request, pk: str) -> Response:
        content = self.manageable(pk)
        data = CaptionCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        caption = caption_create(
            content=content,
            data=upload.read(MAX_CAPTION_BYTES + 1),
            language=data.validated_data["language"],
            label=data.validated_data["label"],
        )
        return Response(CaptionOutputSerializer(caption).data, status=status.HTTP_201_CREATED)


# Remove captions (owner or staff).
class CaptionDetailView(ContentActionView):
    @extend_schema(summary="Delete captions (owner or staff)", responses={204: None, 404: None})
    def delete(self, request: Request, pk: str, caption_id: str) -> Response:
        content = self.manageable(pk)
        caption = caption_get(content_id=content.pk, caption_id=caption_id)
        if caption is None:
            raise NotFound("This content has no such captions.")
        caption_delete(caption=caption)
        return Response(status=status.HTTP_204_NO_CONTENT)
