"""StreamGate's URLs plus one answer that takes a while and then reads the database, as a beacon
does when it arrives as its page is left (tests/web/test_live_server_watch.py)."""

import threading
import time

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.urls import path

from streamgate.urls import urlpatterns as streamgate_urlpatterns

STARTED = threading.Event()
FINISHED = threading.Event()


def slow(request: HttpRequest) -> HttpResponse:
    STARTED.set()
    time.sleep(0.3)
    get_user_model().objects.exists()  # after its test's end: "Database access not allowed"
    FINISHED.set()
    return HttpResponse(status=204)


urlpatterns = [path("slow/", slow), *streamgate_urlpatterns]
