from django.urls import re_path

from apps.chain.api.views import PinView, RegisterView
from apps.content.api.actions import content_action_path

urlpatterns = [
    re_path(content_action_path("register"), RegisterView.as_view(), name="content-register"),
    re_path(content_action_path("pin"), PinView.as_view(), name="content-pin"),
]
