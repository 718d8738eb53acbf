"""The audit trail in the admin: a read-only list (nobody may add, change or delete a row, not
even a superuser), and ``AuditedAdmin``, the base of every ModelAdmin whose additions, changes and
deletions are recorded (contents, users, groups, tokens, wallets).

Django's own ``LogEntry`` stays as it is (the admin's "recent actions"), but it is an ordinary
table, with neither client address nor request id: the audit rows are written from the same
``log_addition``/``log_change``/``log_deletions`` hooks, in the admin's transaction.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.content.audit import AuditEvent, audit_record


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose writes are audit events ``admin.object.added|changed|deleted``, with
    the admin's change message (the names of the changed fields, never their values)."""

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        audit_record(event="admin.object.added", target=obj, details=_details(obj, message))
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        audit_record(event="admin.object.changed", target=obj, details=_details(obj, message))
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            audit_record(event="admin.object.deleted", target=obj, details=_details(obj, None))
        return super().log_deletions(request, queryset)


def _details(obj: Any, message: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"object": str(obj)[:200]}
    if message:
        details["message"] = message
    return details


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "at",
        "event",
        "actor",
        "actor_kind",
        "client_address",
        "target_type",
        "target_id",
        "request_id",
    ]
    list_filter = ["event", "actor_kind", "target_type", "at"]
    search_fields = ["=client_address", "=request_id", "actor", "=target_id", "event"]
    date_hierarchy = "at"
    readonly_fields = [field.name for field in AuditEvent._meta.fields]  # no form edits any
    list_select_related = False
    show_full_result_count = False  # no COUNT(*) of a large table on every page

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
