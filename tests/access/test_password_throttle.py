"""One throttle on every password door (the sign-in page and the admin's login): failures are
counted per account (under the name Django authenticates, whatever its spelling) and per client
address; over the limit, even the right password gets 429 with Retry-After until the window
has passed."""

import json
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F
from django.test import Client, RequestFactory

from apps.access.password_throttle import lockout_response, username_key
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"
DOORS = ("/signin/", "/admin/login/")


def attempt(door: str, username: str, password: str, client: Client | None = None, **extra):
    return (client or Client()).post(door, {"username": username, "password": password}, **extra)


def assert_locked(response, settings) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == str(settings.PASSWORD_SIGNIN_WINDOW)
    assert response.content.decode() == "Too many failed sign-ins. Try again later."


def elsewhere(n: int) -> Client:
    """A browser at another address, so that only the account's count can lock it out."""
    return Client(REMOTE_ADDR=f"203.0.113.{n}")


@pytest.mark.parametrize("door", DOORS)
def test_the_right_password_waits_after_the_limit_of_wrong_ones(door, settings):
    StaffFactory(username="root")
    client = Client()
    failures = [attempt(door, "root", f"guess-{n}", client).status_code for n in range(10)]
    assert_locked(attempt(door, "root", PASSWORD, client), settings)
    assert_locked(attempt(door, "root", PASSWORD, elsewhere(99)), settings)
    assert failures == [200] * 9 + [429]  # the form again, with its error; the 10th locks


def test_both_doors_share_one_count(settings):
    StaffFactory(username="root")
    failures = [
        attempt(DOORS[n % 2], "root", f"guess-{n}", elsewhere(n)).status_code for n in range(10)
    ]
    assert_locked(attempt("/signin/", "root", PASSWORD, elsewhere(98)), settings)
    assert_locked(attempt("/admin/login/", "root", PASSWORD, elsewhere(99)), settings)
    assert failures == [200] * 9 + [429]


@pytest.mark.parametrize("door", DOORS)
def test_the_limit_holds_for_every_spelling_django_accepts(door, settings):
    StaffFactory(username="demo")
    spellings = [" demo", "\tdemo", "demo ", "ｄｅｍｏ", "DEMO"]
    # Failures spread over the spellings, each from its own address, count for one account.
    failures = [
        attempt(door, spellings[n % 5], f"guess-{n}", elsewhere(n)).status_code for n in range(10)
    ]
    for n, spelling in enumerate(["demo", *spellings]):
        assert_locked(attempt(door, spelling, PASSWORD, elsewhere(50 + n)), settings)
    assert failures == [200] * 9 + [429]
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {"demo"}


def test_an_account_is_locked_whatever_the_address_of_the_guesses(settings):
    StaffFactory(username="root")
    failures = [
        attempt("/signin/", "root", f"guess-{n}", elsewhere(n)).status_code for n in range(10)
    ]
    assert_locked(attempt("/signin/", "root", PASSWORD, elsewhere(99)), settings)
    assert failures == [200] * 9 + [429]


def test_an_address_is_locked_whatever_the_accounts_it_guesses(settings):
    StaffFactory(username="root")
    spraying = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(10):  # a forged X-Forwarded-For changes nothing: no proxy is trusted
        headers = {"HTTP_X_FORWARDED_FOR": f"10.0.0.{n}"}
        response = attempt("/signin/", f"user{n}", "guess", spraying, **headers)
        assert response.status_code == (429 if n == 9 else 200)
    assert_locked(attempt("/signin/", "root", PASSWORD, spraying), settings)
    assert (
        attempt("/signin/", "root", PASSWORD, Client(REMOTE_ADDR="198.51.100.1")).status_code == 302
    )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


def test_failures_below_the_limit_leave_the_account_open():
    StaffFactory(username="root")
    for n in range(9):
        assert attempt("/admin/login/", "root", f"guess-{n}").status_code == 200
    signed_in = attempt("/admin/login/", "root", PASSWORD)
    assert signed_in.status_code == 302
    assert signed_in["Location"] != "/admin/login/"


def test_the_lock_ends_with_the_window(settings):
    StaffFactory(username="root")
    for n in range(10):
        attempt("/signin/", "root", f"guess-{n}")
    assert attempt("/signin/", "root", PASSWORD).status_code == 429
    # The window passes without another try.
    window = timedelta(seconds=settings.PASSWORD_SIGNIN_WINDOW + 1)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - window)
    assert attempt("/signin/", "root", PASSWORD).status_code == 302


def test_the_key_is_the_name_django_authenticates():
    request = RequestFactory().post("/signin/", {"username": "\u3000Ｄｅｍｏ\t"})
    assert username_key(request, None) == "demo"
    assert username_key(request, {"username": " ｒｏｏｔ"}) == "root"
    assert username_key(RequestFactory().post("/signin/", {}), None) == ""


def test_a_lockout_under_the_api_is_json(settings):
    response = lockout_response(RequestFactory().post("/api/v1/auth/password/"))
    assert response.status_code == 429
    assert response["Retry-After"] == str(settings.PASSWORD_SIGNIN_WINDOW)
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "detail": "Too many failed sign-ins. Try again later.",
        "reason": "too_many_failed_signins",
    }
