from django.urls import path, re_path

from apps.content.consumers import ContentProgressConsumer, UnknownPathConsumer

websocket_urlpatterns = [
    path("ws/contents/<uuid:content_id>/", ContentProgressConsumer.as_asgi()),
    # Last: every other path (a malformed id, a typo) closes with 4404.
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
