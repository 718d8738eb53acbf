"""StreamGate's URLs plus the plain static views tests/benchmarks/playback.py measures against."""

from django.conf import settings
from django.urls import path, re_path
from django.views.static import serve

from apps.access.stream import storage_response
from streamgate.urls import urlpatterns as streamgate_urlpatterns


def plain(request, path: str):
    """The file at ``path`` exactly as the stream view sends it, without a token to check."""
    return storage_response(request, path, path.rsplit("/", 1)[-1])


urlpatterns = [
    *streamgate_urlpatterns,
    path("plain/<path:path>", plain),
    re_path(r"^static-serve/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
]
