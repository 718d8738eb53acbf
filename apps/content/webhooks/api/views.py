"""Webhook endpoints API: a creator's own endpoints only (someone else's answers 404, as a
missing one does). Thin doors into the webhook services and selectors."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.content.webhooks.api.serializers import (
    DeliveryOutputSerializer,
    EndpointCreatedOutputSerializer,
    EndpointCreateInputSerializer,
    EndpointOutputSerializer,
    EndpointUpdateInputSerializer,
    SecretOutputSerializer,
)
from apps.content.webhooks.models import WebhookEndpoint
from apps.content.webhooks.selectors import deliveries_of, endpoint_get_for_owner, endpoints_of
from apps.content.webhooks.services import (
    delivery_redeliver,
    endpoint_create,
    endpoint_delete,
    endpoint_secret_rotate,
    endpoint_update,
    webhook_test_send,
)

TAGS = ["webhooks"]


class DeliveryPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class WebhookView(APIView):
    permission_classes = [IsAuthenticated]
    required_scope = "manage"  # read by token scope enforcement

    def endpoint(self, endpoint_id) -> WebhookEndpoint:
        endpoint = endpoint_get_for_owner(user=self.request.user, endpoint_id=endpoint_id)
        if endpoint is None:
            raise NotFound("No such webhook endpoint.")
        return endpoint


class WebhookListView(WebhookView):
    @extend_schema(
        tags=TAGS,
        summary="List your webhook endpoints",
        responses=EndpointOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        endpoints = endpoints_of(user=request.user)
        return Response(EndpointOutputSerializer(endpoints, many=True).data)

    @extend_schema(
        tags=TAGS,
        summary="Register a webhook endpoint (creators)",
        description="Answers the signing secret once. Deliveries are signed per Standard "
        "Webhooks (webhook-id, webhook-timestamp, webhook-signature headers).",
        request=EndpointCreateInputSerializer,
        responses={201: EndpointCreatedOutputSerializer, 400: None, 403: None},
    )
    def post(self, request: Request) -> Response:
        data = EndpointCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = endpoint_create(owner=request.user, **data.validated_data)
        return Response(
            EndpointCreatedOutputSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )


class WebhookDetailView(WebhookView):
    @extend_schema(tags=TAGS, summary="Get a webhook endpoint", responses=EndpointOutputSerializer)
    def get(self, request: Request, endpoint_id) -> Response:
        return Response(EndpointOutputSerializer(self.endpoint(endpoint_id)).data)

    @extend_schema(
        tags=TAGS,
        summary="Change a webhook endpoint (url, events, description, enabled)",
        request=EndpointUpdateInputSerializer,
        responses={200: EndpointOutputSerializer, 400: None, 404: None},
    )
    def patch(self, request: Request, endpoint_id) -> Response:
        endpoint = self.endpoint(endpoint_id)
        data = EndpointUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = endpoint_update(endpoint=endpoint, **data.validated_data)
        return Response(EndpointOutputSerializer(endpoint).data)

    @extend_schema(tags=TAGS, summary="Delete a webhook endpoint", responses={204: None, 404: None})
    def delete(self, request: Request, endpoint_id) -> Response:
        endpoint_delete(endpoint=self.endpoint(endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateView(WebhookView):
    @extend_schema(
        tags=TAGS,
        summary="Rotate the signing secret",
        description="Answers the new secret once; the previous one keeps signing beside it "
        "(a second signature) until previous_secret_expires_at.",
        request=None,
        responses={200: SecretOutputSerializer, 404: None},
    )
    def post(self, request: Request, endpoint_id) -> Response:
        endpoint = endpoint_secret_rotate(endpoint=self.endpoint(endpoint_id))
        return Response(SecretOutputSerializer(endpoint).data)


class WebhookTestView(WebhookView):
    @extend_schema(
        tags=TAGS,
        summary="Send a webhook.test event to the endpoint",
        request=None,
        responses={202: DeliveryOutputSerializer, 404: None, 409: None},
    )
    def post(self, request: Request, endpoint_id) -> Response:
        delivery = webhook_test_send(endpoint=self.endpoint(endpoint_id))
        return Response(DeliveryOutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveriesView(WebhookView):
    @extend_schema(
        tags=TAGS,
        summary="The endpoint's delivery log, newest first",
        responses=DeliveryOutputSerializer(many=True),
    )
    def get(self, request: Request, endpoint_id) -> Response:
        paginator = DeliveryPagination()
        page = paginator.paginate_queryset(
            deliveries_of(endpoint=self.endpoint(endpoint_id)), request, view=self
        )
        return paginator.get_paginated_response(DeliveryOutputSerializer(page, many=True).data)


class WebhookRedeliverView(WebhookView):
    @extend_schema(
        tags=TAGS,
        summary="Send a delivery's event again",
        request=None,
        responses={202: DeliveryOutputSerializer, 404: None, 409: None},
    )
    def post(self, request: Request, endpoint_id, delivery_id: int) -> Response:
        delivery = deliveries_of(endpoint=self.endpoint(endpoint_id)).filter(pk=delivery_id).first()
        if delivery is None:
            raise NotFound("This endpoint has no such delivery.")
        again = delivery_redeliver(delivery=delivery)
        return Response(DeliveryOutputSerializer(again).data, status=status.HTTP_202_ACCEPTED)
