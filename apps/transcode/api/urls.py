from django.urls import re_path

from apps.content.api.actions import content_action_path
from apps.transcode.api.views import PosterView, RetryView

urlpatterns = [
    re_path(content_action_path("retry"), RetryView.as_view(), name="content-retry"),
    re_path(content_action_path("poster"), PosterView.as_view(), name="content-poster"),
]
