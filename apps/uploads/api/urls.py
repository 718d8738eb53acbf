from django.urls import path, re_path

from apps.uploads.api.views import UploadCollectionView, UploadResourceView

urlpatterns = [
    path("uploads/", UploadCollectionView.as_view(), name="upload-collection"),
    # tus clients use the Location as given; accept it with or without a trailing slash.
    re_path(
        r"^uploads/(?P<upload_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/?$",
        UploadResourceView.as_view(),
        name="upload-resource",
    ),
]
