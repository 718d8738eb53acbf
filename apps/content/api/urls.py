from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from apps.content.api.actions import content_action_path
from apps.content.api.captions import CaptionDetailView, CaptionListView
from apps.content.api.views import UUID_PATTERN, ContentViewSet

router = SimpleRouter()
router.register("contents", ContentViewSet, basename="content")

urlpatterns = [
    *router.urls,
    path("", include("apps.content.webhooks.api.urls")),
    re_path(content_action_path("captions"), CaptionListView.as_view(), name="content-captions"),
    re_path(
        content_action_path(f"captions/(?P<caption_id>{UUID_PATTERN})"),
        CaptionDetailView.as_view(),
        name="content-caption",
    ),
]
