"""The beacon route alone, included first under /api/v1/ (streamgate/urls.py): beacons are the
API's most frequent request, and a URL found by the first pattern skips the other includes
(Django records every pattern it tried in each include that did not match)."""

from django.urls import path

from apps.access.api import views

urlpatterns = [
    path("contents/<uuid:content_id>/beacons/", views.BeaconView.as_view(), name="beacons"),
]
