from django.contrib import admin

from apps.uploads.models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["filename", "owner", "state", "offset", "length", "backend", "expires_at"]
    list_filter = ["state", "backend", "created_at"]
    search_fields = ["filename", "owner__username", "id", "content__id", "content__title"]
    raw_id_fields = ["owner", "content"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Upload._meta.fields]  # all written by the tus services

    def has_add_permission(self, request) -> bool:
        return False  # uploads are created by tus clients
