"""oEmbed (/oembed) and the watch page's discovery link, Open Graph and Twitter card tags."""

import html
import re
from html.parser import HTMLParser
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client

from apps.content.models import ContentStatus
from apps.content.selectors import poster_url
from apps.content.services import content_delete, content_poster_set, content_update
from tests.access.conftest import PUBLIC, published
from tests.factories import ContentFactory, RenditionFactory

pytestmark = pytest.mark.django_db

GATE = {"erc721": {"chain": "eip155:1", "contract": "0x" + "ab" * 20, "token_id": None}}


@pytest.fixture
def ready(media_root):
    """A ready 1920x1080 video with two renditions and a poster."""
    made = published(
        media_root,
        title="Sunrise over the bay",
        description="A slow  sunrise,\nfilmed from the pier.",
        width=1920,
        height=1080,
        duration=42.0,
        files={"master.m3u8": b"#EXTM3U\n", "poster.jpg": b"\xff\xd8\xff\xe0 a jpeg"},
    )
    content = made.content
    RenditionFactory(content=content, name="1080p", width=1920, height=1080)
    RenditionFactory(content=content, name="360p", width=640, height=360)
    content.poster = f"{made.job.output_prefix}poster.jpg"
    content.save(update_fields=["poster"])
    return content


def oembed(client: Client, url: str, **params: str):
    return client.get("/oembed", {"url": url, **params})


def watch(content) -> str:
    return f"{PUBLIC}/watch/{content.id}/"


def iframe_src(markup: str) -> str:
    return html.unescape(re.search(r'<iframe src="([^"]+)"', markup)[1])


# --- oEmbed answers ---------------------------------------------------------------------------


def test_a_ready_video_has_an_oembed_video_answer(client, ready):
    response = oembed(client, watch(ready), format="json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    answer = response.json()
    markup = answer.pop("html")
    assert answer == {
        "version": "1.0",
        "type": "video",
        "title": "Sunrise over the bay",
        "author_name": ready.owner.username,
        "author_url": f"{PUBLIC}/creators/{ready.owner.username}/",
        "provider_name": "StreamGate",
        "provider_url": f"{PUBLIC}/",
        "width": 960,
        "height": 540,
        "thumbnail_url": f"{PUBLIC}{poster_url(ready)}",
        "thumbnail_width": 1920,
        "thumbnail_height": 1080,
    }
    assert iframe_src(markup) == f"{PUBLIC}/watch/{ready.id}/?embed=1"
    assert 'width="960" height="540"' in markup
    assert "max-width:960px;aspect-ratio:960/540" in markup
    assert 'title="Sunrise over the bay"' in markup
    # The iframe's page is the player alone, and other sites may frame it.
    page = client.get(urlsplit(iframe_src(markup))._replace(scheme="", netloc="").geturl())
    assert page.status_code == 200
    assert "X-Frame-Options" not in page
    assert "frame-ancestors *" in page["Content-Security-Policy"]
    assert b'class="embed"' in page.content
    # The thumbnail is served to anyone.
    thumbnail = client.get(answer["thumbnail_url"].removeprefix(PUBLIC))
    assert thumbnail.status_code == 200
    assert thumbnail.getvalue().startswith(b"\xff\xd8")


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"maxwidth": "480"}, (480, 270)),
        ({"maxheight": "200"}, (356, 200)),
        ({"maxwidth": "480", "maxheight": "100"}, (178, 100)),
        ({"maxwidth": "4000"}, (960, 540)),  # never scaled up
        ({"maxwidth": ""}, (960, 540)),
    ],
)
def test_the_size_fits_within_maxwidth_and_maxheight(client, ready, params, size):
    answer = oembed(client, watch(ready), **params).json()
    assert (answer["width"], answer["height"]) == size
    assert f'width="{size[0]}" height="{size[1]}"' in answer["html"]


@pytest.mark.parametrize(
    "url",
    [
        "{origin}/watch/{id}",  # no trailing slash
        "{origin}/watch/{id}/?t=83",  # a shared start time
        "https://127.0.0.1:8000/watch/{id}/",  # another scheme, same host and port
        "HTTP://127.0.0.1:8000/watch/{ID}/",
    ],
)
def test_watch_urls_as_people_share_them(client, ready, url):
    url = url.format(origin=PUBLIC, id=ready.id, ID=str(ready.id).upper())
    response = oembed(client, url)
    assert response.status_code == 200, response.content
    assert response.json()["title"] == "Sunrise over the bay"


def test_a_gated_video_embeds_and_reveals_only_what_the_catalog_shows(client, media_root):
    content = published(media_root, title="Members only", gate=GATE, width=1280, height=720)
    answer = oembed(client, watch(content.content)).json()
    assert set(answer) == {
        "version",
        "type",
        "title",
        "author_name",
        "author_url",
        "provider_name",
        "provider_url",
        "html",
        "width",
        "height",
    }
    assert answer["title"] == "Members only"
    assert "0xabab" not in answer["html"].lower()
    assert "erc721" not in answer["html"]
    assert (answer["width"], answer["height"]) == (960, 540)


def test_markup_in_a_title_is_escaped(client, ready):
    content_update(content=ready, title='<script>alert("x")</script> & co')
    markup = oembed(client, watch(ready)).json()["html"]
    assert "<script>" not in markup
    assert 'title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"' in markup


def test_an_answer_follows_the_content_s_title_poster_and_status(client, ready):
    assert oembed(client, watch(ready)).json()["title"] == "Sunrise over the bay"
    content_update(content=ready, title="Sunset")
    assert oembed(client, watch(ready)).json()["title"] == "Sunset"
    content_poster_set(content=ready, path=f"contents/{ready.id}/posters/new.jpg")
    ready.refresh_from_db()
    assert oembed(client, watch(ready)).json()["thumbnail_url"] == f"{PUBLIC}{poster_url(ready)}"
    url = watch(ready)
    content_delete(content=ready)
    gone = oembed(client, url)
    assert gone.status_code == 404
    assert gone.json()["reason"] == "not_found"


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status", [ContentStatus.DRAFT, ContentStatus.QUEUED, ContentStatus.PROCESSING, "failed"]
)
def test_a_video_not_ready_has_no_oembed_even_for_its_owner(status):
    content = ContentFactory(status=status, title="Secret draft")
    owner = Client()
    owner.force_login(content.owner)
    response = oembed(owner, watch(content))
    assert response.status_code == 404
    assert response.json() == {
        "detail": "No video ready to watch at that URL.",
        "reason": "not_found",
    }
    assert b"Secret draft" not in response.content


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/watch/00000000-0000-4000-8000-000000000000/", "not_found"),
        ("https://evil.example/watch/{id}/", "not_this_site"),
        ("http://127.0.0.1:9999/watch/{id}/", "not_this_site"),
        ("http://127.0.0.1.evil.example:8000/watch/{id}/", "not_this_site"),
        ("http://127.0.0.1:8000/studio/{id}/", "not_a_video_page"),
        ("http://127.0.0.1:8000/watch/not-a-uuid/", "not_a_video_page"),
        ("http://127.0.0.1:8000/watch/{id}/extra/", "not_a_video_page"),
        ("http://127.0.0.1:8000/", "not_a_video_page"),
    ],
)
def test_urls_of_no_ready_video_of_this_site_are_404(client, ready, url, reason):
    response = oembed(client, url.format(id=ready.id))
    assert response.status_code == 404
    assert response.json()["reason"] == reason
    assert response["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, "url_required"),
        ({"url": ""}, "url_required"),
        ({"url": "watch/some-video"}, "bad_url"),
        ({"url": "ftp://127.0.0.1:8000/watch/x/"}, "bad_url"),
        ({"url": "http://[::1/watch/"}, "bad_url"),
        ({"url": "http://127.0.0.1:99999/watch/"}, "bad_url"),
        ({"url": "http://127.0.0.1:8000/watch/ x/"}, "bad_url"),
        ({"url": "http://127.0.0.1:8000/" + "a" * 2001}, "bad_url"),
        ({"url": "{watch}", "maxwidth": "wide"}, "bad_size"),
        ({"url": "{watch}", "maxwidth": "0"}, "bad_size"),
        ({"url": "{watch}", "maxheight": "-5"}, "bad_size"),
        ({"url": "{watch}", "maxheight": "100001"}, "bad_size"),
    ],
)
def test_malformed_requests_are_400(client, ready, params, reason):
    params = {key: value.format(watch=watch(ready)) for key, value in params.items()}
    response = client.get(f"/oembed?{urlencode(params)}" if params else "/oembed")
    assert response.status_code == 400, response.content
    assert response.json()["reason"] == reason


@pytest.mark.parametrize("wanted", ["xml", "yaml", ""])
def test_formats_other_than_json_are_501(client, ready, wanted):
    response = oembed(client, watch(ready), format=wanted)
    assert response.status_code == 501
    assert response.json() == {
        "detail": "Only format=json is served.",
        "reason": "format_not_supported",
    }


def test_only_get_and_head_are_served(client, ready):
    response = client.post(f"/oembed?{urlencode({'url': watch(ready)})}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["reason"] == "method_not_allowed"
    assert client.head(f"/oembed?{urlencode({'url': watch(ready)})}").status_code == 200


# --- the watch page's head --------------------------------------------------------------------


class HeadTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta" and ("property" in attrs or "name" in attrs):
            self.meta[attrs.get("property") or attrs["name"]] = attrs.get("content", "")
        elif tag == "link":
            self.links.append(attrs)


def head_tags(response) -> HeadTags:
    assert response.status_code == 200
    parser = HeadTags()
    parser.feed(response.content.decode())
    return parser


def social(parser: HeadTags) -> dict[str, str]:
    return {k: v for k, v in parser.meta.items() if k.startswith(("og:", "twitter:"))}


def test_a_ready_watch_page_has_discovery_open_graph_and_twitter_tags(client, ready):
    tags = head_tags(client.get(f"/watch/{ready.id}/"))
    [discovery] = [link for link in tags.links if link.get("type") == "application/json+oembed"]
    assert discovery["rel"] == "alternate"
    assert discovery["title"] == "Sunrise over the bay"
    href = urlsplit(discovery["href"])
    assert f"{href.scheme}://{href.netloc}" == PUBLIC
    found = client.get(f"{href.path}?{href.query}")
    assert found.status_code == 200
    assert found.json()["title"] == "Sunrise over the bay"
    poster = f"{PUBLIC}{poster_url(ready)}"
    assert social(tags) == {
        "og:title": "Sunrise over the bay",
        "og:type": "video.other",
        "og:url": watch(ready),
        "og:site_name": "StreamGate",
        "og:description": "A slow sunrise, filmed from the pier.",
        "og:image": poster,
        "og:image:width": "1920",
        "og:image:height": "1080",
        # http:// site: Twitter's player card needs an HTTPS player, so the large image card.
        "twitter:card": "summary_large_image",
        "twitter:title": "Sunrise over the bay",
        "twitter:description": "A slow sunrise, filmed from the pier.",
        "twitter:image": poster,
    }


def test_an_https_site_offers_twitter_s_player_card(client, ready, settings):
    settings.STREAMGATE_PUBLIC_URL = "https://video.example"
    tags = social(head_tags(client.get(f"/watch/{ready.id}/")))
    assert tags["twitter:card"] == "player"
    assert tags["twitter:player"] == f"https://video.example/watch/{ready.id}/?embed=1"
    assert (tags["twitter:player:width"], tags["twitter:player:height"]) == ("960", "540")
    assert tags["og:url"] == f"https://video.example/watch/{ready.id}/"


def test_without_a_poster_or_description_those_tags_are_left_out(client, media_root):
    content = published(media_root, title="Plain", width=640, height=360).content
    tags = social(head_tags(client.get(f"/watch/{content.id}/")))
    assert tags["twitter:card"] == "summary"
    assert not {"og:image", "og:description", "twitter:image", "twitter:player"} & set(tags)


def test_a_gated_watch_page_tags_say_no_more_than_the_catalog(client, media_root):
    content = published(media_root, title="Members only", gate=GATE, description="Backstage.")
    page = client.get(f"/watch/{content.content.id}/")
    tags = social(head_tags(page))
    assert tags["og:title"] == "Members only"
    assert tags["og:description"] == "Backstage."
    assert not any("erc721" in value or "abab" in value.lower() for value in tags.values())


@pytest.mark.parametrize("status", [ContentStatus.DRAFT, ContentStatus.PROCESSING, "failed"])
def test_a_page_of_a_video_not_ready_has_no_tags(status):
    content = ContentFactory(status=status, description="Not out yet.")
    owner = Client()
    owner.force_login(content.owner)
    tags = head_tags(owner.get(f"/watch/{content.id}/"))
    assert social(tags) == {}
    assert not [link for link in tags.links if "oembed" in link.get("type", "")]
    assert "description" not in tags.meta


def test_the_embedded_player_page_has_no_tags(client, ready):
    tags = head_tags(client.get(f"/watch/{ready.id}/?embed=1"))
    assert social(tags) == {}
    assert not [link for link in tags.links if "oembed" in link.get("type", "")]


def test_a_repeated_request_is_answered_from_the_cache(client, ready, django_assert_num_queries):
    first = oembed(client, watch(ready)).json()
    with django_assert_num_queries(1):  # the ``public`` version, nothing of the content
        again = oembed(client, watch(ready)).json()
    assert again == first
