from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.access import pages, webhook_pages
from apps.access import views as access_views
from apps.access.content_keys import clearkey_license, hls_key
from apps.access.embeds import oembed
from apps.access.public_files import public_file
from apps.access.stream import stream_file
from streamgate.api_errors import NOT_FOUND_URL_NAME, api_not_found
from streamgate.health import healthz, readyz
from streamgate.metrics import metrics_view
from streamgate.outages import server_error

# An outage raised outside a view (a middleware) is a 503 too; any other error the 500 page.
handler500 = server_error

api_v1 = [
    path("", include("apps.access.api.beacon_urls")),  # the most frequent request, first
    path("", include("apps.content.api.urls")),
    # Actions on a content, each routed by the app that owns it.
    path("", include("apps.transcode.api.urls")),
    path("", include("apps.chain.api.urls")),
    path("", include("apps.uploads.api.urls")),
    path("", include("apps.access.api.urls")),
]

urlpatterns = [
    path("", pages.catalog, name="home"),
    path("creators/<str:username>/", pages.creator, name="creator"),
    path("watch/<uuid:content_id>/", pages.watch, name="watch"),
    path("posters/<uuid:content_id>.jpg", pages.poster, name="poster"),
    path("oembed", oembed, name="oembed"),
    path("studio/", pages.studio, name="studio"),
    path("studio/upload/", pages.upload, name="upload"),
    path("studio/sales/", pages.sales, name="sales"),
    path("studio/webhooks/", webhook_pages.webhooks, name="webhooks-page"),
    path("studio/webhooks/<uuid:endpoint_id>/", webhook_pages.webhook, name="webhook-page"),
    path("studio/<uuid:content_id>/", pages.edit, name="edit"),
    path("account/", pages.account, name="account"),
    path("studio/<uuid:content_id>/stats/", pages.audience, name="audience"),
    path("signin/", access_views.SignInView.as_view(), name="signin"),
    path("signout/", access_views.sign_out, name="signout"),
    path("api/v1/", include(api_v1)),
    path("stream/<str:token>/<uuid:content_id>/<path:name>", stream_file, name="stream-file"),
    path("keys/<uuid:content_id>/license", clearkey_license, name="content-license"),
    path("public/<path:name>", public_file, name="public-file"),
    path("keys/<uuid:content_id>/<uuid:kid>.key", hls_key, name="content-key"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # After every API route: the rest of /api/ answers a JSON 404.
    re_path(r"^api/", api_not_found, name=NOT_FOUND_URL_NAME),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
]
