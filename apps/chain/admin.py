from django.contrib import admin, messages

from apps.chain.models import (
    ChainContract,
    ChainEvent,
    GasSample,
    IndexerCursor,
    Offer,
    OfferSet,
    PayoutChange,
    Pin,
    Registration,
)
from apps.chain.services import registration_retry
from streamgate.exceptions import DomainError


@admin.register(ChainContract)
class ChainContractAdmin(admin.ModelAdmin):
    list_display = ["kind", "chain", "address", "deployed_block", "created_at"]
    list_filter = ["chain", "kind"]
    search_fields = ["address", "deploy_tx"]


@admin.register(Registration)
class RegistrationAdmin(admin.ModelAdmin):
    list_display = [
        "content",
        "chain",
        "status",
        "tx_hash",
        "block_number",
        "attempts",
        "updated_at",
    ]
    list_filter = ["chain", "status"]
    search_fields = ["content__title", "content__id", "tx_hash", "cid"]
    raw_id_fields = ["content", "contract"]
    readonly_fields = [f.name for f in Registration._meta.fields]
    actions = ["register_again"]

    @admin.action(description="Register the selected failed registrations again")
    def register_again(self, request, queryset) -> None:
        sent = 0
        for registration in queryset.select_related("content"):
            try:
                registration_retry(registration=registration)
                sent += 1
            except DomainError as error:
                self.message_user(request, f"{registration}: {error.message}", messages.WARNING)
        self.message_user(request, f"{sent} registration(s) queued again.")


@admin.register(IndexerCursor)
class IndexerCursorAdmin(admin.ModelAdmin):
    list_display = ["chain", "indexed_to", "head", "lock_expires_at", "updated_at"]
    readonly_fields = ["chain", "indexed_to", "head", "lock_token", "lock_expires_at", "updated_at"]


@admin.register(ChainEvent)
class ChainEventAdmin(admin.ModelAdmin):
    list_display = ["name", "chain", "block_number", "log_index", "address", "tx_hash"]
    list_filter = ["chain", "name"]
    search_fields = ["tx_hash", "address"]
    readonly_fields = [f.name for f in ChainEvent._meta.fields]


@admin.register(GasSample)
class GasSampleAdmin(admin.ModelAdmin):
    list_display = [
        "chain",
        "block_number",
        "base_fee_per_gas",
        "priority_fee_per_gas",
        "created_at",
    ]
    list_filter = ["chain"]
    readonly_fields = [f.name for f in GasSample._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # measured by the gas monitor


@admin.register(Pin)
class PinAdmin(admin.ModelAdmin):
    list_display = ["content", "cid", "status", "request_id", "updated_at"]
    list_filter = ["status"]
    search_fields = ["cid", "content__title", "request_id"]
    raw_id_fields = ["content"]
    readonly_fields = [f.name for f in Pin._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # pins are requested through the pin service


class OfferInline(admin.TabularInline):
    model = Offer
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in Offer._meta.fields]


# Read-only: a set of offers or a payout is what the creator signed; only their wallet changes it.
@admin.register(OfferSet)
class OfferSetAdmin(admin.ModelAdmin):
    list_display = ["content", "chain", "status", "creator", "tx_hash", "updated_at"]
    list_filter = ["chain", "status"]
    search_fields = ["content__title", "content__id", "creator", "tx_hash"]
    readonly_fields = [f.name for f in OfferSet._meta.fields]
    inlines = [OfferInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(PayoutChange)
class PayoutChangeAdmin(admin.ModelAdmin):
    list_display = ["creator", "payout", "chain", "status", "tx_hash", "updated_at"]
    list_filter = ["chain", "status"]
    search_fields = ["creator", "payout", "tx_hash"]
    readonly_fields = [f.name for f in PayoutChange._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
