from django import forms
from django.contrib import admin

from apps.content.audit_admin import AuditedAdmin
from apps.content.exceptions import BadGate
from apps.content.models import Caption, Content, Rendition
from apps.content.services import content_delete, content_gate_check, content_update

# What a person may edit; everything else is written by the pipeline (status, media, source,
# the published job) or fixed at creation (owner), and is shown read-only.
EDITABLE = ("title", "description", "gate")


class ContentAdminForm(forms.ModelForm):
    class Meta:
        model = Content
        fields = EDITABLE

    def clean_gate(self):
        # The service's own check, so the admin refuses what the API refuses, with its message.
        # A rule left as it was is not judged again (as the API judges only what is sent).
        gate = self.cleaned_data.get("gate")
        if "gate" not in self.changed_data:
            return gate
        try:
            return content_gate_check(gate=gate)
        except BadGate as error:
            raise forms.ValidationError(error.message) from None


class RenditionInline(admin.TabularInline):
    model = Rendition
    extra = 0
    readonly_fields = ["name", "width", "height", "bitrate", "codecs", "playlist"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class CaptionInline(admin.TabularInline):
    """Shown for reference; creators add and delete captions (the API and the studio, whose
    services check the file and remove it from storage)."""

    model = Caption
    extra = 0
    fields = readonly_fields = ["language", "label", "path", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Content)
class ContentAdmin(AuditedAdmin):
    form = ContentAdminForm
    list_display = ["title", "owner", "status", "progress", "duration", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["title", "description", "owner__username", "id"]
    readonly_fields = [f.name for f in Content._meta.fields if f.name not in EDITABLE]
    inlines = [RenditionInline, CaptionInline]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False  # creators create content (API, studio, `manage.py ingest`)

    # Writes go through the services: an edit is content_update (which validates the gate
    # again, in its transaction); a delete also removes the stored files.
    def save_model(self, request, obj: Content, form, change: bool) -> None:
        content_update(content=obj, **{name: form.cleaned_data[name] for name in form.changed_data})

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
    readonly_fields = [f.name for f in Rendition._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # renditions are what an encode produced


from apps.content.webhooks import admin as webhooks_admin  # noqa: E402, F401 - registers them
