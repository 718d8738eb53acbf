from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.access.stream import stream_file
from streamgate.health import healthz, readyz

api_v1 = [
    path("", include("apps.content.api.urls")),
    path("", include("apps.uploads.api.urls")),
    path("", include("apps.access.api.urls")),
]

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("api/v1/", include(api_v1)),
    path("stream/<str:token>/<uuid:content_id>/<path:name>", stream_file, name="stream-file"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", ExportToDjangoView, name="metrics"),
    path("admin/", admin.site.urls),
]
