from django.urls import path, re_path

from apps.chain.api.market_views import (
    OffersView,
    PayoutView,
    PurchaseView,
    SalesView,
    WithdrawView,
)
from apps.chain.api.views import PinView, RegisterView
from apps.content.api.actions import content_action_path

urlpatterns = [
    re_path(content_action_path("register"), RegisterView.as_view(), name="content-register"),
    re_path(content_action_path("pin"), PinView.as_view(), name="content-pin"),
    re_path(content_action_path("offers"), OffersView.as_view(), name="content-offers"),
    re_path(content_action_path("purchase"), PurchaseView.as_view(), name="content-purchase"),
    path("sales/", SalesView.as_view(), name="sales"),
    path("sales/withdraw/", WithdrawView.as_view(), name="sales-withdraw"),
    path("sales/payout/", PayoutView.as_view(), name="sales-payout"),
]
