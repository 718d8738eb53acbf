"""The chain app's actions on a content: register it on a ContentRegistry, pin it on IPFS."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.chain.api.serializers import RegisterInputSerializer
from apps.chain.services import pin_request, registration_request
from apps.content.api.actions import ContentActionView
from apps.content.api.serializers import ContentOutputSerializer


class RegisterView(ContentActionView):
    @extend_schema(
        summary="Register a ready content on a chain's ContentRegistry (owner or staff)",
        request=RegisterInputSerializer,
        responses={202: ContentOutputSerializer, 404: None, 409: None},
    )
    def post(self, request: Request, pk: str) -> Response:
        content = self.manageable(pk)
        data = RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        registration_request(
            content=content, caip2=data.validated_data["chain"], price=data.validated_data["price"]
        )
        return self.accepted(request, content)


class PinView(ContentActionView):
    @extend_schema(
        summary="Pin the content's original on IPFS through the pinning service (owner or staff)",
        request=None,
        responses={202: ContentOutputSerializer, 409: None},
    )
    def post(self, request: Request, pk: str) -> Response:
        content = self.manageable(pk)
        pin_request(content=content)
        return self.accepted(request, content)
