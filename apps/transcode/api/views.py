"""The transcode app's action on a content: encode a failed content again."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.content.api.actions import ContentActionView
from apps.content.api.serializers import ContentOutputSerializer
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
