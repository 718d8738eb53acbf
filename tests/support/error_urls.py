"""StreamGate's URLs plus one view that fails, to see what a 500 shows."""

from django.urls import path

from streamgate.urls import handler500  # noqa: F401 - the product's, as in production
from streamgate.urls import urlpatterns as streamgate_urlpatterns


def fails(request):
    raise RuntimeError("this view fails on purpose")


urlpatterns = [*streamgate_urlpatterns, path("fails/", fails)]
