"""StreamGate's URLs plus two API endpoints with a bug: what a client gets when one slips in."""

from django.urls import path
from rest_framework.views import APIView

from streamgate.urls import urlpatterns as streamgate_urlpatterns


class BrokenApiView(APIView):
    permission_classes = []

    def get(self, request):
        raise RuntimeError("a bug in a DRF view")


def broken_view(request):
    raise RuntimeError("a bug in a plain Django view")


urlpatterns = [
    # Before StreamGate's, whose last /api/ route answers every other /api/ URL.
    path("api/v1/broken/drf/", BrokenApiView.as_view()),
    path("api/v1/broken/django/", broken_view),
    *streamgate_urlpatterns,
]
