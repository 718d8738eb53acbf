from django.urls import path

from apps.content.webhooks.api import views

urlpatterns = [
    path("webhooks/", views.WebhookListView.as_view(), name="webhooks"),
    path("webhooks/<uuid:endpoint_id>/", views.WebhookDetailView.as_view(), name="webhook"),
    path(
        "webhooks/<uuid:endpoint_id>/rotate-secret/",
        views.WebhookRotateView.as_view(),
        name="webhook-rotate",
    ),
    path("webhooks/<uuid:endpoint_id>/test/", views.WebhookTestView.as_view(), name="webhook-test"),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries/",
        views.WebhookDeliveriesView.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries/<int:delivery_id>/redeliver/",
        views.WebhookRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
]
