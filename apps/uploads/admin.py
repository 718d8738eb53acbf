from django.contrib import admin

from apps.uploads.models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["filename", "owner", "state", "offset", "length", "backend", "expires_at"]
    list_filter = ["state", "backend", "created_at"]
    search_fields = ["filename", "owner__username", "id", "content__id", "content__title"]
    raw_id_fields = ["owner", "content"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "owner",
        "content",
        "state",
        "backend",
        "length",
        "offset",
        "filename",
        "metadata",
        "metadata_header",
        "source_path",
        "s3_upload_id",
        "s3_parts",
        "part_size",
        "tail_size",
        "lock_token",
        "lock_expires_at",
        "progress_sent_at",
        "error",
        "sha256",
        "expires_at",
        "created_at",
        "updated_at",
        "completed_at",
        "finalized_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # uploads are created by tus clients
