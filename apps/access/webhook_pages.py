"""The studio's webhooks pages: list and add endpoints (the secret shown once), enable or
disable, rotate, send a test, read the delivery log and redeliver. Plain forms (POST with the
CSRF token) into the webhook services, so they work without JavaScript."""

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from apps.access.pages import _creator_required
from apps.content.exceptions import WebhookDisabled, WebhookInvalid
from apps.content.webhooks.events import EVENT_TYPES
from apps.content.webhooks.selectors import deliveries_of, endpoint_get_for_owner, endpoints_of
from apps.content.webhooks.services import (
    delivery_redeliver,
    endpoint_create,
    endpoint_delete,
    endpoint_secret_rotate,
    endpoint_update,
    webhook_test_send,
)

LOG_SIZE = 50


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"  # a secret may be on the page
    return response


@login_required
@require_http_methods(["GET", "POST"])
def webhooks(request: HttpRequest) -> HttpResponse:
    _creator_required(request)
    context: dict = {"nav": "studio", "event_types": EVENT_TYPES, "form": {}}
    status = 200
    if request.method == "POST":
        form = {
            "url": request.POST.get("url", ""),
            "events": request.POST.getlist("events"),
            "description": request.POST.get("description", ""),
        }
        try:
            endpoint = endpoint_create(owner=request.user, **form)
        except WebhookInvalid as error:
            context.update(form=form, error=error.message)
            status = 400
        else:
            context.update(created=endpoint, secret=endpoint.secret)
            status = 201
    context["endpoints"] = endpoints_of(user=request.user)
    return _no_store(render(request, "webhooks.html", context, status=status))


@login_required
@require_http_methods(["GET", "POST"])
def webhook(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    _creator_required(request)
    endpoint = endpoint_get_for_owner(user=request.user, endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    context: dict = {"nav": "studio", "endpoint": endpoint}
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action in ("enable", "disable"):
                endpoint_update(endpoint=endpoint, enabled=action == "enable")
                context["message"] = f"Endpoint {action}d."
            elif action == "rotate":
                context["secret"] = endpoint_secret_rotate(endpoint=endpoint).secret
            elif action == "test":
                webhook_test_send(endpoint=endpoint)
                context["message"] = "Test event queued; it shows in the log below."
            elif action == "redeliver":
                delivery = (
                    deliveries_of(endpoint=endpoint)
                    .filter(pk=_int(request.POST.get("delivery")))
                    .first()
                )
                if delivery is None:
                    raise Http404("This endpoint has no such delivery.")
                delivery_redeliver(delivery=delivery)
                context["message"] = "Queued again; it shows at the top of the log."
            elif action == "delete":
                endpoint_delete(endpoint=endpoint)
                return HttpResponseRedirect("/studio/webhooks/")
            else:
                context["error"] = "Unknown action."
                status = 400
        except WebhookDisabled as error:
            context["error"] = error.message
            status = 409
    context["deliveries"] = deliveries_of(endpoint=endpoint)[:LOG_SIZE]
    return _no_store(render(request, "webhook.html", context, status=status))


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return 0
