"""The tus 1.0.0 endpoints: thin doors that translate headers and call the upload services."""

import logging
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.parsers import BaseParser, DataAndFiles
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.content.scopes import UPLOAD
from apps.uploads.exceptions import (
    BadUploadRequest,
    UnsupportedContentType,
    UnsupportedVersion,
    UploadNotFound,
)
from apps.uploads.models import Upload
from apps.uploads.protocol import (
    CHECKSUM_ALGORITHMS,
    OFFSET_CONTENT_TYPE,
    TUS_EXTENSIONS,
    TUS_VERSION,
    ProtocolError,
    http_date,
    parse_checksum,
    parse_non_negative,
)
from apps.uploads.selectors import upload_get_for_owner
from apps.uploads.services.creating import upload_create
from apps.uploads.services.ending import upload_terminate
from apps.uploads.services.receiving import upload_append, upload_head
from streamgate.exceptions import DomainError
from streamgate.throttling import LenientScopedRateThrottle

logger = logging.getLogger(__name__)

READ_BLOCK = 1024 * 1024
OVERRIDABLE = {"PATCH", "DELETE", "HEAD", "GET"}


def _body(request: HttpRequest) -> Iterator[bytes | memoryview]:
    """The request body as it arrives, never all of it at once (never ``request.body``).

    Under the streaming ASGI handler the chunks come straight from the server without a copy
    (``request.body_chunks``); otherwise, 1 MiB reads from the request's stream.
    """
    body_chunks = getattr(request, "body_chunks", None)
    if body_chunks is not None:
        yield from body_chunks()
        return
    while block := request.read(READ_BLOCK):
        yield block


def _header(request: Request, name: str) -> str | None:
    return request.headers.get(name)


def _protocol(call, *args):
    try:
        return call(*args)
    except ProtocolError as error:
        raise BadUploadRequest(str(error), reason="protocol") from error


class OffsetStreamParser(BaseParser):
    """Claims ``application/offset+octet-stream`` without reading it: the services stream the
    body themselves. (DRF parses a session-authenticated POST while checking its CSRF token.)"""

    media_type = OFFSET_CONTENT_TYPE

    def parse(self, stream, media_type=None, parser_context=None) -> DataAndFiles:
        return DataAndFiles({}, {})


class TusView(APIView):
    """Shared tus behaviour: Tus-Resumable on every request and response, method override."""

    required_scope = UPLOAD  # every tus request but OPTIONS (discovery, which needs none)
    permission_classes = [IsAuthenticated]
    parser_classes = [OffsetStreamParser]

    def dispatch(self, request: HttpRequest, *args, **kwargs):
        override = request.headers.get("X-HTTP-Method-Override", "").upper()
        if request.method == "POST" and override in OVERRIDABLE:
            request.method = override
        return super().dispatch(request, *args, **kwargs)

    def get_permissions(self):
        if self.request.method == "OPTIONS":
            return [AllowAny()]
        return super().get_permissions()

    def initial(self, request: Request, *args, **kwargs) -> None:
        # The version is checked before anything else, signed in or not (tus 1.0.0, core).
        if request.method != "OPTIONS" and _header(request, "Tus-Resumable") != TUS_VERSION:
            raise UnsupportedVersion(
                f"This server speaks tus {TUS_VERSION}; send 'Tus-Resumable: {TUS_VERSION}'.",
                reason="tus_version",
            )
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Tus-Resumable"] = TUS_VERSION
        response["Cache-Control"] = "no-store"
        if response.status_code == UnsupportedVersion.http_status:
            response["Tus-Version"] = TUS_VERSION
        return response

    def options(self, request: Request, *args, **kwargs) -> HttpResponse:
        response = HttpResponse(status=204)
        response["Tus-Version"] = TUS_VERSION
        response["Tus-Extension"] = ",".join(TUS_EXTENSIONS)
        response["Tus-Max-Size"] = str(settings.TUS_MAX_SIZE)
        response["Tus-Checksum-Algorithm"] = ",".join(CHECKSUM_ALGORITHMS)
        return response

    def _offset_response(self, upload: Upload, status: int) -> HttpResponse:
        response = HttpResponse(status=status)
        response["Upload-Offset"] = str(upload.offset)
        if not upload.is_complete:
            response["Upload-Expires"] = http_date(upload.expires_at)
        return response

    def _append(self, request: Request, upload: Upload, offset: int) -> Upload:
        if (request.content_type or "").split(";")[0].strip() != OFFSET_CONTENT_TYPE:
            raise UnsupportedContentType(
                f"Send the bytes as Content-Type: {OFFSET_CONTENT_TYPE}.", reason="content_type"
            )
        length = _header(request, "Content-Length")
        return upload_append(
            upload=upload,
            offset=offset,
            body=_body(request._request),
            content_length=_protocol(parse_non_negative, "Content-Length", length)
            if length
            else None,
            checksum=_protocol(parse_checksum, _header(request, "Upload-Checksum")),
        )


TUS_HEADERS_DOC = [
    OpenApiParameter("Tus-Resumable", str, OpenApiParameter.HEADER, required=True, enum=["1.0.0"]),
]


class UploadCollectionView(TusView):
    """``/api/v1/uploads/``: discover the server (OPTIONS) and create uploads (POST)."""

    throttle_scope = "uploads"

    def get_throttles(self):
        # Creating uploads is limited per creator; discovery (OPTIONS) is not. With the cache
        # away creators still upload: they are signed in and bounded by their quota.
        return [LenientScopedRateThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        summary="Create a tus upload (creation, creation-with-upload)",
        parameters=[
            *TUS_HEADERS_DOC,
            OpenApiParameter("Upload-Length", int, OpenApiParameter.HEADER, required=True),
            OpenApiParameter(
                "Upload-Metadata",
                str,
                OpenApiParameter.HEADER,
                description="Comma-separated `key base64(value)`: filename, title, content_id.",
            ),
        ],
        request={OFFSET_CONTENT_TYPE: OpenApiTypes.BINARY},
        responses={
            201: OpenApiResponse(description="Created; Location names the upload."),
            400: OpenApiResponse(description="Malformed headers or metadata."),
            403: OpenApiResponse(description="Not a creator."),
            413: OpenApiResponse(description="Over Tus-Max-Size or your quota."),
            429: OpenApiResponse(description="Too many uploads created; see Retry-After."),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        length = _protocol(parse_non_negative, "Upload-Length", _header(request, "Upload-Length"))
        upload = upload_create(
            owner=request.user, length=length, metadata_header=_header(request, "Upload-Metadata")
        )
        if request.content_type and request.content_type.startswith(OFFSET_CONTENT_TYPE):
            try:
                upload = self._append(request, upload, 0)
            except DomainError as error:
                # The upload exists either way: answer with its Location and the bytes kept,
                # so the client goes on with PATCH instead of creating it again.
                logger.info(
                    "creation-with-upload kept no or part of its body",
                    extra={"upload_id": str(upload.id), "reason": error.reason},
                )
                upload.refresh_from_db()
        response = self._offset_response(upload, 201)
        response["Location"] = request.build_absolute_uri(f"/api/v1/uploads/{upload.id}")
        return response


class UploadResourceView(TusView):
    """``/api/v1/uploads/<id>``: offset (HEAD), append (PATCH), terminate (DELETE)."""

    def _own(self, request: Request, upload_id: str) -> Upload:
        upload = upload_get_for_owner(user=request.user, upload_id=upload_id)
        if upload is None:
            raise UploadNotFound("No such upload.")
        return upload

    @extend_schema(
        summary="Offset of a tus upload",
        parameters=TUS_HEADERS_DOC,
        responses={200: None, 404: None, 410: None},
    )
    def head(self, request: Request, upload_id: str) -> HttpResponse:
        upload = upload_head(upload=self._own(request, upload_id))
        response = self._offset_response(upload, 200)
        response["Upload-Length"] = str(upload.length)
        if upload.metadata_header:
            response["Upload-Metadata"] = upload.metadata_header
        return response

    @extend_schema(
        summary="Append bytes to a tus upload",
        parameters=[
            *TUS_HEADERS_DOC,
            OpenApiParameter("Upload-Offset", int, OpenApiParameter.HEADER, required=True),
            OpenApiParameter("Upload-Checksum", str, OpenApiParameter.HEADER),
        ],
        request={OFFSET_CONTENT_TYPE: OpenApiTypes.BINARY},
        responses={
            204: None,
            404: None,
            409: OpenApiResponse(
                description="Upload-Offset is not the stored offset, or another PATCH is "
                "writing (reason `locked`, with Retry-After)."
            ),
            410: None,
            413: None,
            415: None,
            460: None,
        },
    )
    def patch(self, request: Request, upload_id: str) -> HttpResponse:
        upload = self._own(request, upload_id)
        offset = _protocol(parse_non_negative, "Upload-Offset", _header(request, "Upload-Offset"))
        return self._offset_response(self._append(request, upload, offset), 204)

    @extend_schema(
        summary="Terminate a tus upload",
        parameters=TUS_HEADERS_DOC,
        responses={204: None, 404: None, 409: None, 410: None},
    )
    def delete(self, request: Request, upload_id: str) -> HttpResponse:
        upload_terminate(upload=self._own(request, upload_id))
        return HttpResponse(status=204)
