from django.contrib import admin

from apps.content.models import Content, Rendition
from apps.content.services import content_delete


class RenditionInline(admin.TabularInline):
    model = Rendition
    extra = 0
    readonly_fields = ["name", "width", "height", "bitrate", "codecs", "playlist"]
    can_delete = False


@admin.register(Content)
class ContentAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "status", "progress", "duration", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["title", "description", "owner__username", "id"]
    readonly_fields = [
        "id",
        "status",
        "progress",
        "duration",
        "width",
        "height",
        "error",
        "poster",
        "created_at",
        "updated_at",
    ]
    raw_id_fields = ["owner"]
    inlines = [RenditionInline]
    date_hierarchy = "created_at"

    # Deleting here goes through the service, which also removes the stored files.
    def delete_model(self, request, obj: Content) -> None:
        content_delete(content=obj)

    def delete_queryset(self, request, queryset) -> None:
        for content in queryset:
            content_delete(content=content)


@admin.register(Rendition)
class RenditionAdmin(admin.ModelAdmin):
    list_display = ["content", "name", "width", "height", "bitrate", "codecs"]
    list_filter = ["name"]
    search_fields = ["content__title", "content__id"]
    raw_id_fields = ["content"]
