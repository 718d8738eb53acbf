"""Every page as people meet it, in Debian's chromium against the embedded stack (uvicorn on
SQLite, so search runs on FTS5): desktop (1366×860) and phone (390×844), light and dark. On each
page: nothing wider than the screen, and axe-core (npm, pinned; injected) finds no serious or
critical violation. And finding a video: search by a word of its description, sort, the
gated/free filter, pages, a creator's page."""

import json

import pytest

from tests.support.processes import ROOT, embedded_env, free_port, manage, web_server
from tests.web.conftest import screenshot, wait_until

PASSWORD = "correct horse battery staple"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}

SEED = """
from django.contrib.auth import get_user_model
from apps.content.models import Content
User = get_user_model()
maker = User.objects.get(username="maker"); maker.set_password(PASSWORD); maker.save()
boss = User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
grace = User.objects.create(username="grace")
grace.groups.add(*maker.groups.all())
gate = {"type": "allowlist", "chain": "eip155:1", "addresses": ["0x" + "1" * 40]}
rows = [
    (maker, "Harbour at dawn", "Fishing boats leave while the lighthouse still turns.", None),
    (grace, "Lighthouse keeper", "A day with the keeper, encoded in 4K.", gate),
    (maker, "Bread recipes", "Sourdough and rye, step by step.", None),
]
rows += [(maker, f"Episode {n:02}", "A long series about knots.", None) for n in range(1, 27)]
for owner, title, description, gated in rows:
    Content.objects.create(owner=owner, title=title, description=description, gate=gated,
                           status="ready", duration=42.0)
Content.objects.create(owner=maker, title="Still encoding a rather long title for a phone",
                       description="", status="processing", progress=40)
Content.objects.create(owner=maker, title="Broken upload", status="failed",
                       error="This file is not a video we can read.")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    env = embedded_env(folder / "var", DJANGO_DEBUG="0", LOG_LEVEL="WARNING")
    env["CHAIN_RPC_URLS"] = json.dumps({"eip155:1": "http://127.0.0.1:9/"})
    manage(env, "migrate", "--noinput")
    manage(env, "create_api_token", "maker", "--creator")
    manage(env, "shell", "-c", SEED.replace("PASSWORD", repr(PASSWORD)))
    logs = folder / "logs"
    logs.mkdir()
    port = free_port()
    env["STREAMGATE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    with web_server(env, logs / "web.log", port) as base:
        yield base


def _context(browser, viewport, scheme="light"):
    # axe-core is injected as a script: the page's CSP (which forbids that, rightly) is
    # bypassed in these contexts only; the other browser tests keep it on.
    context = browser.new_context(viewport=viewport, color_scheme=scheme, bypass_csp=True)
    context.set_default_timeout(30_000)
    return context


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/signin/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/")


def _content_id(page, base: str, title: str) -> str:
    found = page.request.get(f"{base}/api/v1/contents/", params={"owner": "me", "page_size": 100})
    return next(item["id"] for item in found.json()["results"] if item["title"] == title)


def _check(page, url: str, name: str, *, shoot: bool = True) -> list[str]:
    """Problems of the page at ``url``: overflow and axe's serious or critical findings; and
    its screenshot in test-results/ unless ``shoot`` is False."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    problems = []
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    if width > viewport:
        wide = page.evaluate(
            """(limit) => [...document.querySelectorAll('body *')]
                .filter((e) => e.getBoundingClientRect().right > limit + 1)
                .slice(0, 5).map((e) => e.tagName + '.' + e.className)""",
            viewport,
        )
        problems.append(f"{name}: {width} px wide on a {viewport} px screen ({wide})")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => `${v.id} (${v.impact}): `
                + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', '))"""
    )
    problems += [f"{name}: {violation}" for violation in result]
    if shoot:
        screenshot(page, f"page-{name}")
    return problems


@pytest.mark.parametrize(
    ("viewport", "scheme"),
    [(DESKTOP, "light"), (PHONE, "light"), (PHONE, "dark")],
    ids=["desktop", "phone", "phone-dark"],
)
def test_every_page_fits_and_passes_axe(browser, site, viewport, scheme):
    if not AXE.exists():
        pytest.fail("axe-core is missing: `npm ci` installs it (package.json)")
    size = "desktop" if viewport is DESKTOP else "phone"
    tag = f"{size}-{scheme}"
    problems: list[str] = []
    errors: list[str] = []
    context = _context(browser, viewport, scheme)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    for path, name in [
        ("/", "catalog"),
        ("/?q=lighthouse", "search"),
        ("/?q=nothing+matches+this", "no-results"),
        ("/creators/grace/", "creator"),
        ("/signin/", "signin"),
        ("/no/such/page/", "404"),
    ]:
        problems += _check(page, f"{site}{path}", f"{tag}-{name}")
    _sign_in(page, site, "maker")
    processing = _content_id(page, site, "Still encoding a rather long title for a phone")
    failed = _content_id(page, site, "Broken upload")
    for path, name in [
        ("/", "catalog-signed-in"),
        ("/studio/", "studio"),
        ("/studio/upload/", "upload"),
        (f"/studio/{processing}/", "edit"),
        (f"/studio/{failed}/", "edit-failed"),
        (f"/watch/{processing}/", "watch-processing"),
        ("/account/", "account"),
        (f"/studio/{processing}/stats/", "audience"),
        ("/studio/webhooks/", "webhooks"),
    ]:
        problems += _check(page, f"{site}{path}", f"{tag}-{name}")
    context.clear_cookies()
    _sign_in(page, site, "boss")
    problems += _check(page, f"{site}/admin/", f"{tag}-admin")
    # Every list page the admin offers (on the phone, a few: the same template).
    lists = page.evaluate(
        "[...new Set([...document.querySelectorAll('#content-main th[scope=row] a')]"
        ".map((a) => a.getAttribute('href')))]"
    )
    assert len(lists) >= 8, lists
    if viewport is PHONE:
        lists = [path for path in lists if "content/content" in path or "auth/user" in path]
    for path in lists:  # Django's change list, each with our columns: checked, not pictured
        name = f"{tag}-admin{path.replace('/', '-')[6:-1]}"
        problems += _check(page, f"{site}{path}", name, shoot=False)
    context.close()
    assert not errors, errors
    assert not problems, "\n".join(problems)


def test_finding_a_video(browser, site):
    context = _context(browser, DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site}/")
    # 24 a page: the newest first, 31 ready in all.
    assert page.locator("[data-testid=catalog] article").count() == 24
    page.get_by_role("link", name="Next").click()
    assert page.locator("[data-testid=catalog] article").count() == 5
    assert "Page 2 of 2" in page.locator("nav.pages").inner_text()
    # A word of the description finds the video; a stemmed form too.
    page.get_by_label("Search videos").fill("sourdough")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/?q=sourdough**")
    titles = page.locator("[data-testid=catalog] h2").all_inner_texts()
    assert titles == ["Bread recipes"]
    assert "1 result for “sourdough”" in page.get_by_test_id("finder-summary").inner_text()
    page.get_by_label("Search videos").fill("lighthouses")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/?q=lighthouses**")
    assert page.locator("[data-testid=catalog] h2").all_inner_texts() == [
        "Lighthouse keeper",
        "Harbour at dawn",
    ]
    # Filters apply as soon as they are chosen, keeping the words.
    page.get_by_label("Show").select_option("free")
    page.wait_for_url("**show=free**")
    assert page.locator("[data-testid=catalog] h2").all_inner_texts() == ["Harbour at dawn"]
    page.get_by_label("Show").select_option("gated")
    page.wait_for_url("**show=gated**")
    assert page.locator("[data-testid=catalog] h2").all_inner_texts() == ["Lighthouse keeper"]
    assert "Gated" in page.locator("[data-testid=catalog] article").inner_text()
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Sort").select_option("title")
    page.wait_for_url("**sort=title**")
    assert page.locator("[data-testid=catalog] h2").first.inner_text() == "Bread recipes"
    # A creator's page lists theirs only.
    page.goto(f"{site}/?q=keeper")
    page.get_by_role("link", name="grace").click()
    page.wait_for_url(f"{site}/creators/grace/")
    assert page.locator("[data-testid=catalog] h2").all_inner_texts() == ["Lighthouse keeper"]
    assert page.get_by_test_id("creator-count").inner_text() == "1 video published"
    page.get_by_label("Search grace's videos").fill("bread")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/creators/grace/?q=bread**")
    assert page.get_by_test_id("no-results").is_visible()
    # Hand-edited links fall back rather than fail; an unknown creator is the 404 page.
    page.goto(f"{site}/?sort=loudest&show=maybe&page=99")
    assert page.locator("[data-testid=catalog] article").count() == 5  # the last page
    response = page.goto(f"{site}/creators/nobody/")
    assert response.status == 404
    assert "Not found" in page.content()
    context.close()
    assert not errors, errors


def test_the_phone_menu(browser, site):
    context = _context(browser, PHONE)
    page = context.new_page()
    page.goto(f"{site}/")
    catalog_link = page.get_by_role("link", name="Catalog")
    assert not catalog_link.is_visible()  # folded under the Menu button
    menu = page.get_by_text("Menu")
    box = page.locator("details.menu > summary").bounding_box()
    assert box["height"] >= 44
    menu.click()
    assert catalog_link.is_visible()
    assert catalog_link.bounding_box()["height"] >= 44
    page.keyboard.press("Escape")
    wait_until(page, "!document.querySelector('details.menu').open")
    # The header is one row: the brand and the button.
    assert page.locator("header.topbar").bounding_box()["height"] < 70
    context.close()
    desktop = _context(browser, DESKTOP).new_page()
    desktop.goto(f"{site}/")
    assert desktop.get_by_role("link", name="Catalog").is_visible()
    assert not desktop.locator("details.menu > summary").is_visible()
    desktop.context.close()


def test_odd_addresses_are_answered_not_failed(browser, site):
    """A NUL in the search or a creator's name (PostgreSQL refuses it in text; here SQLite),
    and a creator named like the API's 'me': answers, never a 500."""
    page = _context(browser, DESKTOP).new_page()
    response = page.goto(f"{site}/?q=sour%00dough")
    assert response.status == 200
    assert page.locator("[data-testid=catalog] h2").all_inner_texts() == ["Bread recipes"]
    assert page.goto(f"{site}/creators/gr%00ace/").status == 404
    assert page.goto(f"{site}/creators/me/").status == 404  # nobody is called "me" here
    page.context.close()
