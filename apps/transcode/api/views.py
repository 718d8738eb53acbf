"""The transcode app's actions on a content: encode a failed content again; choose its
poster."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.content.api.actions import ContentActionView
from apps.content.api.serializers import ContentOutputSerializer
from apps.transcode.posters import poster_from_frame, poster_from_image
from apps.transcode.services import transcode_retry


class RetryView(ContentActionView):
    @extend_schema(
        summary="Encode a failed content again (owner or staff)",
        request=None,
        responses={202: ContentOutputSerializer, 409: None},
    )
    def post(self, request: Request, pk: str) -> Response:
        content = self.manageable(pk)
        transcode_retry(content=content)
        return self.accepted(request, content)


class PosterInputSerializer(serializers.Serializer):
    image = serializers.FileField(required=False, help_text="JPEG, PNG or WebP, at most 5 MiB.")
    time = serializers.FloatField(
        required=False, min_value=0, help_text="Take the frame at this second of the video."
    )

    def validate(self, attrs):
        if ("image" in attrs) == ("time" in attrs):
            raise serializers.ValidationError("Send either an image or a time, not both.")
        return attrs


class PosterView(ContentActionView):
    @extend_schema(
        summary="Choose the poster: a frame of the video or an uploaded image (owner or staff)",
        request={
            "multipart/form-data": PosterInputSerializer,
            "application/json": PosterInputSerializer,
        },
        responses={200: ContentOutputSerializer, 400: None, 409: None},
    )
    def post(self, request: Request, pk: str) -> Response:
        content = self.manageable(pk)
        data = PosterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        image = data.validated_data.get("image")
        if image is not None:
            poster_from_image(content=content, image=image, size=image.size)
        else:
            poster_from_frame(content=content, at=data.validated_data["time"])
        answer = self.accepted(request, content)
        answer.status_code = status.HTTP_200_OK
        return answer
