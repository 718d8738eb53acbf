from django.urls import path

from apps.access.api import views

urlpatterns = [
    path("auth/siwe/nonce/", views.SiweNonceView.as_view(), name="siwe-nonce"),
    path("auth/siwe/verify/", views.SiweVerifyView.as_view(), name="siwe-verify"),
    path("auth/solana/nonce/", views.SolanaNonceView.as_view(), name="solana-nonce"),
    path("auth/solana/verify/", views.SolanaVerifyView.as_view(), name="solana-verify"),
    path("auth/logout/", views.LogoutView.as_view(), name="logout"),
    path("auth/me/", views.MeView.as_view(), name="me"),
    path("auth/wallets/", views.WalletListView.as_view(), name="wallet-list"),
    path("auth/wallets/<int:wallet_id>/", views.WalletDetailView.as_view(), name="wallet-detail"),
    path("auth/tokens/", views.TokenListView.as_view(), name="token-list"),
    path("auth/tokens/<int:token_id>/", views.TokenDetailView.as_view(), name="token-detail"),
    path("contents/<uuid:content_id>/playback/", views.PlaybackView.as_view(), name="playback"),
]
