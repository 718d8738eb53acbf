"""The admin's door into the chain services: registering failed registrations again."""

import pytest

from apps.chain.models import Registration, RegistrationStatus
from apps.chain.services import registration_request
from apps.chain.tasks import chain_registration_advance
from tests.factories import registrable_content

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    return client


def register_again(admin_client, *registrations, capture):
    with capture() as callbacks:
        response = admin_client.post(
            "/admin/chain/registration/",
            {"action": "register_again", "_selected_action": [r.pk for r in registrations]},
            follow=True,
        )
    assert response.status_code == 200
    return response.content.decode(), [
        c.args for c in callbacks if getattr(c, "task", None) is chain_registration_advance
    ]


def test_a_failed_registration_is_registered_again_from_the_admin(
    admin_client, deployed, tester_chain, django_capture_on_commit_callbacks
):
    content = registrable_content()
    failed = registration_request(content=content, caip2=tester_chain.caip2, price=5)
    Registration.objects.filter(pk=failed.pk).update(
        status=RegistrationStatus.FAILED, error="Gave up after 8 failed attempts in a row"
    )
    page, sent = register_again(admin_client, failed, capture=django_capture_on_commit_callbacks)
    assert "1 registration(s) queued again." in page
    fresh = Registration.objects.exclude(pk=failed.pk).get(content=content)
    assert (fresh.status, fresh.chain, fresh.price) == ("pending", tester_chain.caip2, 5)
    assert sent == [(fresh.pk,)]
    failed.refresh_from_db()
    assert failed.status == RegistrationStatus.FAILED  # kept as the record of what went wrong


def test_a_live_registration_is_not_sent_twice_from_the_admin(
    admin_client, deployed, tester_chain, django_capture_on_commit_callbacks
):
    content = registrable_content()
    live = registration_request(content=content, caip2=tester_chain.caip2)
    page, sent = register_again(admin_client, live, capture=django_capture_on_commit_callbacks)
    assert "Only a failed registration can be retried; this one is pending." in page
    assert "0 registration(s) queued again." in page
    assert sent == []
    assert Registration.objects.filter(content=content).count() == 1
