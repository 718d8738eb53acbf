"""The market's doors: a content's offers (``offers/``) and purchase (``purchase/``), and a
creator's sales and withdrawals. Thin: apps/chain/offers.py and purchases.py decide."""

import functools

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.chain.api.serializers import (
    OfferSetOutputSerializer,
    OffersInputSerializer,
    PayoutInputSerializer,
    PayoutOutputSerializer,
    PurchaseInputSerializer,
    PurchaseStatusOutputSerializer,
    TransactionOutputSerializer,
    TypedDataOutputSerializer,
    WithdrawInputSerializer,
)
from apps.chain.market_chains import node_answers
from apps.chain.models import OfferSet, OfferSetStatus
from apps.chain.offers import offer_set_output, offers_propose, offers_sign
from apps.chain.payouts import payout_changes, payout_output, payout_propose, payout_sign
from apps.chain.purchases import (
    purchase_status,
    purchase_transactions,
    sales_of,
    withdraw_transactions,
)
from apps.content.api.actions import ContentActionView
from apps.content.models import Content
from apps.content.scopes import MANAGE, PLAYBACK, READ
from apps.content.selectors import content_visible_to
from streamgate.exceptions import DomainError


def _node(handler):
    """The handler, with a chain's node failing mapped to 503 (apps/chain/market_chains.py)."""

    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        with node_answers():
            return handler(*args, **kwargs)

    return wrapped


def _body(request: Request) -> dict:
    if not isinstance(request.data, dict):
        raise DomainError("The body must be a JSON object.", reason="body")
    return request.data


class OffersView(ContentActionView):
    required_scope = {"GET": READ, "PUT": MANAGE}
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="The content's offer sets per chain: live, and any being signed or relayed",
        responses={200: OfferSetOutputSerializer(many=True)},
    )
    @_node
    def get(self, request: Request, pk: str) -> Response:
        content = self.manageable(pk)
        latest: dict[str, OfferSet] = {}
        for offer_set in OfferSet.objects.filter(content=content).exclude(
            status__in=(OfferSetStatus.UNSIGNED, OfferSetStatus.SUPERSEDED)
        ):
            latest.setdefault(offer_set.chain, offer_set)  # newest first
        return Response([offer_set_output(s) for s in latest.values()])

    @extend_schema(
        summary="Set the content's offers on a chain, signed by the creator's wallet",
        description="Without `signature`: 202 with the EIP-712 typed data for the creator's "
        "linked wallet (the one the registry records as creator) to sign with "
        "eth_signTypedData_v4. The same body plus `signature`: 200, and StreamGate relays "
        "the offers to the registry (paying the gas; it cannot change them).",
        request=OffersInputSerializer,
        responses={
            200: OfferSetOutputSerializer,
            202: TypedDataOutputSerializer,
            400: None,
            409: None,
        },
    )
    @_node
    def put(self, request: Request, pk: str) -> Response:
        content = self.manageable(pk)
        body = _body(request)
        if "offers" not in body:
            raise DomainError('"offers" is required (a list; empty removes them).', reason="offers")
        if body.get("signature") is None:
            proposed = offers_propose(
                content=content,
                user=request.user,
                items=body["offers"],
                chain_hint=body.get("chain"),
            )
            return Response(
                {"typed_data": proposed["typed_data"], "signer": proposed["signer"]},
                status=status.HTTP_202_ACCEPTED,
            )
        offer_set = offers_sign(
            content=content,
            user=request.user,
            items=body["offers"],
            signature=body["signature"],
            chain_hint=body.get("chain"),
        )
        return Response(offer_set_output(offer_set))


class PurchaseView(APIView):
    # A purchase only prepares the transactions the viewer's wallet signs and sends; buying
    # access is part of watching, so a player backend's playback token may do it.
    required_scope = PLAYBACK
    permission_classes = [IsAuthenticated]
    queryset = Content.objects.none()

    def _content(self, request: Request, pk: str) -> Content:
        content = content_visible_to(request.user).filter(pk=pk).first()
        if content is None:
            raise NotFound("No such content.")
        return content

    @extend_schema(
        summary="The transactions your wallet sends to buy one of the content's offers",
        description="200 `[{chainId, to, data, value}]`, to send in order (an ERC-20 approve "
        "first when the allowance is short). With `permit: true` and no `signature`: 202 with "
        "an EIP-2612 permit to sign; then `permit`, `signature` and `deadline`: one "
        "buyWithPermit transaction.",
        request=PurchaseInputSerializer,
        responses={
            200: OpenApiResponse(TransactionOutputSerializer(many=True)),
            202: TypedDataOutputSerializer,
            400: None,
            404: None,
            409: None,
        },
    )
    @_node
    def post(self, request: Request, pk: str) -> Response:
        content = self._content(request, pk)
        body = _body(request)
        answer = purchase_transactions(
            content=content,
            user=request.user,
            offer_id=body.get("offer"),
            account=body.get("account"),
            permit=body.get("permit") is True,
            signature=body.get("signature"),
            deadline=body.get("deadline"),
        )
        if "typed_data" in answer:
            return Response(answer, status=status.HTTP_202_ACCEPTED)
        return Response(answer["transactions"])

    @extend_schema(
        summary="Where your purchase transaction is: pending, mined, confirmed, indexed, failed",
        parameters=[OpenApiParameter("tx", str, required=True, description="Transaction hash.")],
        responses={200: PurchaseStatusOutputSerializer, 400: None},
    )
    @_node
    def get(self, request: Request, pk: str) -> Response:
        content = self._content(request, pk)
        answer = purchase_status(content=content, user=request.user, tx_hash=request.GET.get("tx"))
        response = Response(answer)
        response["Cache-Control"] = "no-store"
        return response


class SalesView(APIView):
    required_scope = READ
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Purchases of your contents, totals per currency and what you may withdraw",
        responses={200: None},
    )
    @_node
    def get(self, request: Request) -> Response:
        response = Response(sales_of(user=request.user))
        response["Cache-Control"] = "no-store"
        return response


class WithdrawView(APIView):
    required_scope = MANAGE
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="The transaction that sends your proceeds to your payout address",
        request=WithdrawInputSerializer,
        responses={200: TransactionOutputSerializer(many=True), 400: None, 409: None},
    )
    @_node
    def post(self, request: Request) -> Response:
        body = _body(request)
        answer = withdraw_transactions(
            user=request.user, caip2=body.get("chain"), currency=body.get("currency")
        )
        return Response(answer["transactions"])


class PayoutView(APIView):
    required_scope = {"GET": READ, "PUT": MANAGE}
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Your newest signed payout change per chain and creator address, with its status",
        responses={200: PayoutOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        response = Response(payout_changes(user=request.user))
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(
        summary="Send your proceeds on a chain to another address, signed by your wallet",
        description="Without `signature`: 202 with the EIP-712 typed data for your creator "
        "wallet to sign. The same body plus `signature`: 200, and StreamGate relays it "
        "(paying the gas; it cannot change the address).",
        request=PayoutInputSerializer,
        responses={
            200: PayoutOutputSerializer,
            202: TypedDataOutputSerializer,
            400: None,
            409: None,
        },
    )
    @_node
    def put(self, request: Request) -> Response:
        body = _body(request)
        fields = {
            "user": request.user,
            "caip2": body.get("chain"),
            "payout": body.get("payout"),
            "account": body.get("account"),
        }
        if body.get("signature") is None:
            return Response(payout_propose(**fields), status=status.HTTP_202_ACCEPTED)
        return Response(payout_output(payout_sign(**fields, signature=body["signature"])))
