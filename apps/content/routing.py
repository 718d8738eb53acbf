from django.urls import path

from apps.content.consumers import ContentProgressConsumer

websocket_urlpatterns = [
    path("ws/contents/<uuid:content_id>/", ContentProgressConsumer.as_asgi()),
]
