from django.contrib import admin, messages

from apps.transcode.models import JobState, TranscodeChunk, TranscodeJob
from apps.transcode.services import transcode_retry
from streamgate.exceptions import DomainError


class TranscodeChunkInline(admin.TabularInline):
    """A chunked job's chunks: state, worker, attempts and timings (the last heartbeat says
    whether a running chunk's worker still answers), read-only."""

    model = TranscodeChunk
    extra = 0
    can_delete = False
    fields = [
        "kind",
        "index",
        "start_seconds",
        "seconds",
        "state",
        "progress",
        "attempts",
        "worker",
        "interruption",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "encode_seconds",
    ]
    readonly_fields = fields
    ordering = ["kind", "index"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TranscodeJob)
class TranscodeJobAdmin(admin.ModelAdmin):
    inlines = [TranscodeChunkInline]
    list_display = [
        "content",
        "attempt",
        "state",
        "stage",
        "realtime_factor",
        "chunks_published",
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


@admin.register(TranscodeChunk)
class TranscodeChunkAdmin(admin.ModelAdmin):
    """Every chunk of every chunked job: which are queued, running (where), or retried."""

    list_display = [
        "job",
        "kind",
        "index",
        "state",
        "progress",
        "attempts",
        "worker",
        "encode_seconds",
        "enqueued_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    ]
    list_filter = ["state", "kind"]
    search_fields = ["job__id", "job__content__title", "worker"]
    raw_id_fields = ["job"]
    readonly_fields = [f.name for f in TranscodeChunk._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
