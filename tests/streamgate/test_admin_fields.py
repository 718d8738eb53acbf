"""What the admin lets a person edit, app by app: only fields that are a person's to choose.
State written by the services (offsets, leases, statuses, sources, pins, owners of tokens and
wallets) is shown read-only, so that no plain ``save()`` can put a row in a state the services
would never produce. A new editable field has to be added here on purpose."""

import pytest
from django.contrib import admin
from django.test import RequestFactory

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

EDITABLE = {
    "content.Content": {"title", "description", "gate"},  # saved through content_update
    "content.Rendition": set(),
    "content.AuditEvent": set(),  # append-only: no add, change or delete permission either
    "content.WebhookEndpoint": set(),  # changed by its owner (API, studio), whose checks apply
    "content.WebhookDelivery": set(),
    "uploads.Upload": set(),
    "transcode.TranscodeJob": set(),
    "transcode.TranscodeChunk": set(),
    "access.ApiToken": {"name"},
    "access.WalletAccount": set(),
    "access.SignInNonce": set(),
    "chain.ChainContract": {"address", "chain", "deploy_tx", "deployed_block", "kind"},
    "chain.Registration": set(),
    "chain.IndexerCursor": set(),
    "chain.ChainEvent": set(),
    "chain.GasSample": set(),
    "chain.Pin": set(),
    "chain.OfferSet": set(),
    "chain.PayoutChange": set(),
}


@pytest.fixture
def superuser_request():
    request = RequestFactory().get("/admin/")
    request.user = StaffFactory(is_superuser=True)
    return request


def our_admins():
    return {
        model._meta.label: model_admin
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in {"content", "uploads", "transcode", "access", "chain"}
    }


def test_every_admin_of_ours_is_listed():
    assert set(our_admins()) == set(EDITABLE)


@pytest.mark.parametrize("label", sorted(EDITABLE))
def test_only_a_persons_fields_are_editable(label, superuser_request):
    form = our_admins()[label].get_form(superuser_request, None)
    assert set(form.base_fields) == EDITABLE[label]
