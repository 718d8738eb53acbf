"""The base of an action on a content that another app owns, served at the content's URL
(``POST /api/v1/contents/<id>/<action>/``): transcode's ``retry/``, chain's ``register/`` and
``pin/``. Each app routes its own action (its ``api/urls.py``, included by streamgate/urls.py);
this gives them the content's lookup, the owner-or-staff check and the content's JSON, so that
an action answers exactly as the content API does."""

from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.content.api.serializers import ContentOutputSerializer
from apps.content.api.views import UUID_PATTERN
from apps.content.models import Content
from apps.content.scopes import MANAGE
from apps.content.selectors import content_can_manage, content_visible_to


def content_action_path(action: str) -> str:
    """The action's URL regex: the content's own, as the content API routes it (anything that
    is not a uuid falls through to the API's JSON 404)."""
    return rf"^contents/(?P<pk>{UUID_PATTERN})/{action}/$"


# A POST on one content by its owner or staff, answering 202 with the content's JSON. (A
# comment, not a docstring: the schema would show a docstring as each action's description.)
class ContentActionView(APIView):
    # Changing a content is ``manage`` (apps/content/scopes.py); a GET an action adds
    # declares its own mapping.
    required_scope: str | dict[str, str] | None = MANAGE
    # Only for the schema generator, which reads the model (and the uuid pk) from it.
    queryset = Content.objects.none()
    permission_classes = [IsAuthenticatedOrReadOnly]

    def manageable(self, pk: str) -> Content:
        """The content, if the caller may see it (404) and change it (403)."""
        content = content_visible_to(self.request.user).filter(pk=pk).first()
        if content is None:
            raise NotFound("No such content.")
        if not content_can_manage(user=self.request.user, content=content):
            raise PermissionDenied("Only the owner or staff can change this content.")
        return content

    def accepted(self, request: Request, content: Content) -> Response:
        """202 with the content as it is now (the action's effect included)."""
        content = content_visible_to(request.user).get(pk=content.pk)
        data = ContentOutputSerializer(content, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)
