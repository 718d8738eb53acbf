from django.contrib import admin, messages

from apps.transcode.models import JobState, TranscodeJob
from apps.transcode.services import transcode_retry
from streamgate.exceptions import DomainError


@admin.register(TranscodeJob)
class TranscodeJobAdmin(admin.ModelAdmin):
    list_display = [
        "content",
        "attempt",
        "state",
        "stage",
        "realtime_factor",
        "worker",
        "created_at",
        "finished_at",
    ]
    list_filter = ["state", "stage", "created_at"]
    search_fields = ["content__title", "content__id", "id", "worker"]
    raw_id_fields = ["content"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in TranscodeJob._meta.fields]
    actions = ["retry_content"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Retry encoding of the selected jobs' failed contents")
    def retry_content(self, request, queryset) -> None:
        retried = 0
        for job in queryset.filter(state=JobState.FAILED).select_related("content"):
            try:
                transcode_retry(content=job.content)
                retried += 1
            except DomainError as error:
                self.message_user(request, f"{job.content}: {error.message}", messages.WARNING)
        self.message_user(request, f"{retried} content(s) queued again.")
