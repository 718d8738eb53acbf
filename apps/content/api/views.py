"""Content REST API: thin doors into selectors and services."""

from django.utils.cache import patch_vary_headers
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response

from apps.content.api.pagination import ContentPagination
from apps.content.api.serializers import (
    ContentCreateInputSerializer,
    ContentListFilterSerializer,
    ContentOutputSerializer,
    ContentUpdateInputSerializer,
)
from apps.content.cache import (
    etag_matches,
    page_etag,
    page_get,
    page_key,
    page_set,
    page_versions,
    public_versions,
)
from apps.content.models import Content, ContentStatus
from apps.content.scopes import MANAGE, READ, UPLOAD
from apps.content.selectors import content_can_manage, content_list, content_visible_to
from apps.content.services import content_create, content_delete, content_update
from streamgate.edge import edge_mark

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


@extend_schema_view(
    list=extend_schema(
        summary="List contents",
        description="Ready content of everyone, plus your own in any status (staff: all).",
        parameters=[
            OpenApiParameter("status", str, enum=ContentStatus.values),
            OpenApiParameter("owner", str, description="A username, or 'me'."),
            OpenApiParameter(
                "search",
                str,
                description="Full-text search of title and description: every word must match"
                " (quotes for a phrase, 'or' between alternatives, -word to exclude).",
            ),
            OpenApiParameter("gated", bool, description="true: gated only; false: free only."),
            OpenApiParameter(
                "sort",
                str,
                description="newest (default), oldest, title, relevance (default with search),"
                " views.",
            ),
        ],
        responses=ContentOutputSerializer(many=True),
    ),
    create=extend_schema(
        summary="Create a draft",
        request=ContentCreateInputSerializer,
        responses={201: ContentOutputSerializer},
    ),
    retrieve=extend_schema(summary="Get a content", responses=ContentOutputSerializer),
    partial_update=extend_schema(
        summary="Edit title, description or gate (owner or staff)",
        request=ContentUpdateInputSerializer,
        responses=ContentOutputSerializer,
    ),
    destroy=extend_schema(
        summary="Delete a content and its files (owner or staff)", responses={204: None}
    ),
)
class ContentViewSet(viewsets.GenericViewSet):
    required_scope = {"GET": READ, "POST": UPLOAD, "PATCH": MANAGE, "DELETE": MANAGE}
    # Only for the schema generator, which reads the model (and the uuid pk) from it.
    queryset = Content.objects.none()
    pagination_class = ContentPagination
    permission_classes = [IsAuthenticatedOrReadOnly]
    lookup_field = "pk"
    lookup_value_regex = UUID_PATTERN
    serializer_class = ContentOutputSerializer

    def get_permissions(self):
        if self.action == "create":
            return [IsAuthenticated()]
        return super().get_permissions()

    def _visible(self, pk: str) -> Content:
        content = content_visible_to(self.request.user).filter(pk=pk).first()
        if content is None:
            raise NotFound("No such content.")
        return content

    def _manageable(self, pk: str) -> Content:
        content = self._visible(pk)
        if not content_can_manage(user=self.request.user, content=content):
            raise PermissionDenied("Only the owner or staff can change this content.")
        return content

    def _output(self, content: Content, code: int = status.HTTP_200_OK) -> Response:
        return Response(
            ContentOutputSerializer(content, context={"request": self.request}).data, status=code
        )

    def _replayable(
        self, response: Response, versions: dict[str, int] | None, key: str | None, public: bool
    ) -> Response:
        """Reads depend only on the caller, the URL and the data (as of ``versions``, read
        before the query): the edge may replay them while those versions stand, and HTTP
        caches may keep them under their ETag (revalidating every time)."""
        etag = page_etag(key)
        if etag is not None:
            response["ETag"] = etag
        response["Cache-Control"] = (
            "public, no-cache" if public and etag is not None else "private, no-cache"
        )
        patch_vary_headers(response, ["Authorization"])
        edge_mark(response, request=self.request, versions=versions)
        return response

    def _not_modified(self, key: str | None, versions, public: bool) -> Response | None:
        """304 when the caller already holds the answer under ``key``."""
        etag = page_etag(key)
        if not etag_matches(self.request.headers.get("If-None-Match"), etag):
            return None
        return self._replayable(
            Response(status=status.HTTP_304_NOT_MODIFIED), versions, key, public
        )

    def list(self, request: Request) -> Response:
        filters = ContentListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        versions = page_versions(request.user)
        wanted = filters.validated_data
        # Ready contents are everyone's: such a page is the same whoever asks.
        public = wanted.get("status") == ContentStatus.READY and wanted.get("owner") != "me"
        if public:
            versions = public_versions(versions)
        key = page_key("list", request, versions, public=public)
        unchanged = self._not_modified(key, versions, public)
        if unchanged is not None:
            return unchanged
        cached = page_get(key)
        if cached is not None:
            return self._replayable(Response(cached), versions, key, public)
        contents = content_list(user=request.user, **wanted)
        page = self.paginate_queryset(contents)
        data = ContentOutputSerializer(page, many=True, context={"request": request}).data
        response = self.get_paginated_response(data)
        page_set(key, response.data)
        return self._replayable(response, versions, key, public)

    def create(self, request: Request) -> Response:
        data = ContentCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        content = content_create(owner=request.user, **data.validated_data)
        return self._output(content, status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        versions = page_versions(request.user)
        public = public_versions(versions)
        # A ready content's JSON is the same whoever asks; others' only for their owner/staff.
        public_key = page_key("detail", request, public, public=True)
        own_key = page_key("detail", request, versions, public=False)
        candidates = ((public_key, public, True), (own_key, versions, False))
        for key, used, shared in candidates:
            unchanged = self._not_modified(key, used, shared)
            if unchanged is not None:
                return unchanged
        for key, used, shared in candidates:
            cached = page_get(key)
            if cached is not None:
                return self._replayable(Response(cached), used, key, shared)
        content = self._visible(pk)
        response = self._output(content)
        if content.status == ContentStatus.READY:
            page_set(public_key, response.data)
            return self._replayable(response, public, public_key, True)
        page_set(own_key, response.data)
        return self._replayable(response, versions, own_key, False)

    def partial_update(self, request: Request, pk: str) -> Response:
        content = self._manageable(pk)
        data = ContentUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        content = content_update(content=content, **data.validated_data)
        return self._output(content_visible_to(request.user).get(pk=content.pk))

    def destroy(self, request: Request, pk: str) -> Response:
        content_delete(content=self._manageable(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
