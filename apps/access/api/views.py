"""Access API: wallet sign-in, credentials, wallets and playback. Thin doors into services."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import login, logout
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.access.account import account_sign_out_everywhere, account_token_create
from apps.access.api.parsers import BeaconJSONParser, BeaconTextParser
from apps.access.api.serializers import (
    ApiTokenOutputSerializer,
    BeaconInputSerializer,
    ErrorOutputSerializer,
    MeOutputSerializer,
    NonceOutputSerializer,
    PlaybackOutputSerializer,
    SignInOutputSerializer,
    SignOutEverywhereInputSerializer,
    SignOutEverywhereOutputSerializer,
    SiweVerifyInputSerializer,
    SolanaVerifyInputSerializer,
    TokenCreatedOutputSerializer,
    TokenCreateInputSerializer,
    WalletLinkInputSerializer,
    WalletOutputSerializer,
)
from apps.access.audience import (
    VIEWER_COOKIE_SALT,
    beacon_parse,
    beacon_record,
    view_session_issue,
    viewer_cookie_new,
)
from apps.access.middleware import SESSION_WALLET
from apps.access.models import ApiToken
from apps.access.playback import playback_grant
from apps.access.selectors import api_tokens_of, wallets_of
from apps.access.services import (
    SignInResult,
    api_token_revoke,
    signin_ethereum,
    signin_nonce_issue,
    signin_solana,
    wallet_link,
    wallet_unlink,
)
from apps.content.scopes import MANAGE, NO_SCOPE, PLAYBACK, READ
from apps.content.selectors import content_visible_get, user_is_creator
from streamgate.client_address import request_client_address
from streamgate.throttling import LenientScopedRateThrottle, StrictScopedRateThrottle

ERRORS = {
    400: OpenApiResponse(description="Malformed request"),
    401: OpenApiResponse(ErrorOutputSerializer, description="Refused, with a reason"),
    429: OpenApiResponse(description="Too many sign-in attempts from this address"),
    503: OpenApiResponse(ErrorOutputSerializer, description="A chain did not answer"),
}


def _client_secret(request: Request) -> str:
    return request.COOKIES.get(settings.SIGNIN_COOKIE, "")


class _SignInView(APIView):
    required_scope = NO_SCOPE  # anyone may sign in; a token sent along is not used
    permission_classes = [AllowAny]
    # Anonymous, and each request writes a nonce or checks a signature: with the cache away,
    # the limit cannot count, so sign-in answers 503 rather than go unlimited.
    throttle_classes = [StrictScopedRateThrottle]
    throttle_scope = "signin"


class NonceView(_SignInView):
    """A nonce for one sign-in, bound to this client by an HttpOnly cookie."""

    namespace = ""

    @extend_schema(request=None, responses={201: NonceOutputSerializer, 429: ERRORS[429]})
    def post(self, request: Request) -> Response:
        client_secret = _client_secret(request) or secrets.token_urlsafe(32)
        nonce = signin_nonce_issue(namespace=self.namespace, client_secret=client_secret)
        public = settings.STREAMGATE_PUBLIC_URL
        body = NonceOutputSerializer(
            {
                "nonce": nonce.value,
                "expires_at": nonce.expires_at,
                "domain": public.split("://", 1)[1],
                "uri": public,
            }
        ).data
        response = Response(body, status=status.HTTP_201_CREATED)
        response.set_cookie(
            settings.SIGNIN_COOKIE,
            client_secret,
            max_age=2 * settings.SIGNIN_NONCE_TTL,
            path="/api/v1/auth/",
            secure=public.startswith("https://"),
            httponly=True,
            samesite="Lax",
        )
        return response


class SiweNonceView(NonceView):
    namespace = "eip155"


class SolanaNonceView(NonceView):
    namespace = "solana"


def _signed_in(request: Request, result: SignInResult) -> Response:
    # Browsers also get a session, so that pages and the websocket know the viewer.
    login(request._request, result.user, backend="django.contrib.auth.backends.ModelBackend")
    request._request.session[SESSION_WALLET] = result.wallet.pk
    body = SignInOutputSerializer(
        {
            "token": result.clear_token,
            "account": result.account,
            "expires_at": result.token.expires_at,
        }
    ).data
    response = Response(body)
    response.delete_cookie(settings.SIGNIN_COOKIE, path="/api/v1/auth/")
    return response


class VerifyView(_SignInView):
    """Check a signed sign-in message; the caller gets a token (and a session) of the wallet's
    account, whoever was signed in before. Linking is explicit: POST auth/wallets/."""

    input_serializer: type = SiweVerifyInputSerializer
    verify = staticmethod(signin_ethereum)

    def post(self, request: Request) -> Response:
        data = self.input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = self.verify(**data.validated_data, client_secret=_client_secret(request))
        return _signed_in(request, result)


@extend_schema_view(
    post=extend_schema(
        summary="Sign in with Ethereum (EIP-4361), as the wallet's account",
        request=SiweVerifyInputSerializer,
        responses={200: SignInOutputSerializer, **ERRORS},
    )
)
class SiweVerifyView(VerifyView):
    input_serializer = SiweVerifyInputSerializer
    verify = staticmethod(signin_ethereum)


@extend_schema_view(
    post=extend_schema(
        summary="Sign in with Solana, as the wallet's account",
        request=SolanaVerifyInputSerializer,
        responses={200: SignInOutputSerializer, **ERRORS},
    )
)
class SolanaVerifyView(VerifyView):
    input_serializer = SolanaVerifyInputSerializer
    verify = staticmethod(signin_solana)


class LogoutView(APIView):
    required_scope = NO_SCOPE  # any token may log itself out
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Revoke the bearer token of this request and end the session",
        request=None,
        responses={204: None},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            api_token_revoke(token=request.auth)
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutEverywhereView(APIView):
    required_scope = MANAGE
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="End every session of yours (all devices, this one too) and the tokens wallet "
        "sign-ins issued; optionally revoke every API token",
        request=SignOutEverywhereInputSerializer,
        responses={200: SignOutEverywhereOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = SignOutEverywhereInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        done = account_sign_out_everywhere(
            user=request.user, revoke_api_tokens=data.validated_data["revoke_api_tokens"]
        )
        logout(request._request)
        return Response(
            SignOutEverywhereOutputSerializer(
                {"tokens_revoked": done.tokens_revoked, "signed_out_at": done.at}
            ).data
        )


class MeView(APIView):
    required_scope = READ
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="The signed-in user and their wallets", responses=MeOutputSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            MeOutputSerializer(
                {
                    "username": user.get_username(),
                    "is_creator": user_is_creator(user),
                    "is_staff": user.is_staff,
                    "wallets": wallets_of(user),
                },
                context=_wallet_context(request),
            ).data
        )


def _credential_wallet(request: Request) -> int | None:
    """The wallet behind this request's credential: a bearer token's, or the session's
    sign-in wallet."""
    if isinstance(request.auth, ApiToken):
        return request.auth.wallet_id
    return request.session.get(SESSION_WALLET)


def _wallet_context(request: Request) -> dict:
    return {"session_wallet": request.session.get(SESSION_WALLET)}


class WalletListView(APIView):
    required_scope = {"GET": READ, "POST": MANAGE}
    permission_classes = [IsAuthenticated]
    throttle_classes = [StrictScopedRateThrottle]  # linking checks a signature, as sign-in does
    throttle_scope = "signin"

    def get_throttles(self):
        return super().get_throttles() if self.request.method == "POST" else []

    @extend_schema(summary="Your linked wallets", responses=WalletOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        wallets = wallets_of(request.user)
        return Response(
            WalletOutputSerializer(wallets, many=True, context=_wallet_context(request)).data
        )

    @extend_schema(
        summary="Link another wallet: sign a fresh nonce's sign-in message with it",
        request=WalletLinkInputSerializer,
        responses={
            201: WalletOutputSerializer,
            200: OpenApiResponse(WalletOutputSerializer, description="Already yours"),
            **ERRORS,
            409: OpenApiResponse(ErrorOutputSerializer, description="Linked to another account"),
        },
    )
    def post(self, request: Request) -> Response:
        data = WalletLinkInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wallet, linked = wallet_link(
            user=request.user, **data.validated_data, client_secret=_client_secret(request)
        )
        response = Response(
            WalletOutputSerializer(wallet, context=_wallet_context(request)).data,
            status=status.HTTP_201_CREATED if linked else status.HTTP_200_OK,
        )
        response.delete_cookie(settings.SIGNIN_COOKIE, path="/api/v1/auth/")
        return response


class WalletDetailView(APIView):
    required_scope = MANAGE
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Unlink a wallet (and revoke the tokens its sign-ins issued)",
        responses={204: None, 404: None, 409: ErrorOutputSerializer},
    )
    def delete(self, request: Request, wallet_id: int) -> Response:
        wallet = wallets_of(request.user).filter(pk=wallet_id).first()
        if wallet is None:
            raise NotFound("No such wallet among yours.")
        wallet_unlink(wallet=wallet)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListView(APIView):
    required_scope = MANAGE  # credentials: listing them too
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="Your API tokens", responses=ApiTokenOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        tokens = api_tokens_of(request.user)
        return Response(
            ApiTokenOutputSerializer(tokens, many=True, context={"auth": request.auth}).data
        )

    @extend_schema(
        summary="Create a named API token; its secret is in this answer only",
        request=TokenCreateInputSerializer,
        responses={
            201: TokenCreatedOutputSerializer,
            400: OpenApiResponse(
                description="Malformed (errors by field), or an unknown scope or none "
                "(`unknown_scope`, `no_scope`)"
            ),
            403: OpenApiResponse(
                ErrorOutputSerializer, description="A scope the asking token lacks"
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = TokenCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        days = data.validated_data.get("expires_in_days")
        token, clear = account_token_create(
            user=request.user,
            name=data.validated_data["name"],
            expires_in=timedelta(days=days) if days else None,
            wallet_id=_credential_wallet(request),
            scopes=data.validated_data.get("scopes"),
            held_scopes=request.auth.scopes if isinstance(request.auth, ApiToken) else None,
        )
        token.clear = clear  # type: ignore[attr-defined]  # shown once, never stored
        response = Response(
            TokenCreatedOutputSerializer(token, context={"auth": request.auth}).data,
            status=status.HTTP_201_CREATED,
        )
        response["Cache-Control"] = "no-store"
        return response


class TokenDetailView(APIView):
    required_scope = MANAGE
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="Revoke one of your tokens", responses={204: None, 404: None})
    def delete(self, request: Request, token_id: int) -> Response:
        token = api_tokens_of(request.user).filter(pk=token_id).first()
        if token is None:
            raise NotFound("No such token among yours.")
        api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlaybackView(APIView):
    required_scope = PLAYBACK
    permission_classes = [AllowAny]
    # With the cache away, viewers still get their URLs (the gate has its own timeouts).
    throttle_classes = [LenientScopedRateThrottle]
    throttle_scope = "playback"

    @extend_schema(
        summary="Signed, short-lived HLS and DASH URLs, if the caller may watch",
        request=None,
        responses={
            200: PlaybackOutputSerializer,
            401: OpenApiResponse(ErrorOutputSerializer, description="Gated: sign in first"),
            403: OpenApiResponse(ErrorOutputSerializer, description="The gate denies"),
            404: None,
            409: OpenApiResponse(ErrorOutputSerializer, description="Not ready"),
            429: ERRORS[429],
            503: ERRORS[503],
        },
    )
    def post(self, request: Request, content_id) -> Response:
        content = content_visible_get(request.user, content_id)
        if content is None:
            raise NotFound("No such content.")
        playback = playback_grant(user=request.user, content=content)
        cookie_viewer = None
        if not request.user.is_authenticated:
            cookie_viewer = request.get_signed_cookie(
                settings.VIEWER_COOKIE, default=None, salt=VIEWER_COOKIE_SALT
            )
        fresh_cookie = not request.user.is_authenticated and not cookie_viewer
        if fresh_cookie:
            cookie_viewer = viewer_cookie_new()
        session = view_session_issue(
            user=request.user, content=content, cookie_viewer=cookie_viewer
        )
        body = PlaybackOutputSerializer(
            {
                "hls_url": request.build_absolute_uri(playback.hls_path),
                "dash_url": request.build_absolute_uri(playback.dash_path),
                "expires_at": playback.expires_at,
                "view_session": session,
            }
        ).data
        response = Response(body)
        response["Cache-Control"] = "no-store"
        if fresh_cookie:
            response.set_signed_cookie(
                settings.VIEWER_COOKIE,
                cookie_viewer,
                salt=VIEWER_COOKIE_SALT,
                max_age=365 * 24 * 3600,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response


class BeaconView(APIView):
    """See apps/access/audience.py: the view session in the body is the only credential."""

    # Never read: no authentication runs here (the view session is the credential); declared
    # for the record (README: scopes), since a player backend sends beacons with its grants.
    required_scope = PLAYBACK

    authentication_classes: list = []  # no cookie or session read: nothing for CSRF to guard
    permission_classes = [AllowAny]
    parser_classes = [BeaconJSONParser, BeaconTextParser]
    # Anonymous, and each beacon writes rows: with the cache away the limit cannot count, so
    # beacons are refused (503) rather than unlimited; players drop them.
    throttle_classes = [StrictScopedRateThrottle]
    throttle_scope = "beacons"

    @extend_schema(
        summary="A player's batch of playback events (one a minute at most, one at page exit)",
        request=BeaconInputSerializer,
        responses={
            204: None,
            400: OpenApiResponse(ErrorOutputSerializer, description="Malformed or out of range"),
            403: OpenApiResponse(ErrorOutputSerializer, description="Bad or expired session"),
            404: None,
            413: OpenApiResponse(ErrorOutputSerializer, description="Body too large"),
            415: None,
            429: OpenApiResponse(description="Too many beacons from this address"),
        },
    )
    def post(self, request: Request, content_id) -> Response:
        session, events = beacon_parse(request.data)
        beacon_record(
            content_id=content_id,
            session_text=session,
            events=events,
            address=request_client_address(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
