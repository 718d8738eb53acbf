"""Submitting a Django admin change form as a person would: the page's own fields as rendered,
with some changed (tests that write through the admin, whatever its form holds)."""

from html.parser import HTMLParser

from django.test import Client


class _FormFields(HTMLParser):
    """The name/value pairs a browser would submit from the page's forms."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._textarea: list[str] | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        found = {name: value or "" for name, value in attrs}
        name = found.get("name")
        if tag == "input" and name:
            kind = found.get("type", "text")
            if kind in ("submit", "button", "image", "file", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in found:
                return
            self.fields.append((name, found.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "textarea" and name:
            self._textarea = [name, ""]
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in found:
            self.fields.append((self._select, found.get("value", "")))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None:
            name, text = self._textarea
            self.fields.append((name, text.removeprefix("\n")))  # as a browser reads it
            self._textarea = None
        elif tag == "select":
            self._select = None


def admin_change(client: Client, url: str, changes: dict[str, str | None]) -> None:
    """Load the change form at ``url``, apply ``changes`` (None: a checkbox left unticked),
    save, and check the admin took it."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    parser = _FormFields()
    parser.feed(page.content.decode())
    data: dict[str, list[str]] = {}
    for name, value in parser.fields:
        data.setdefault(name, []).append(value)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = [value]
    data["_save"] = ["Save"]
    answer = client.post(url, data)
    assert answer.status_code == 302, (url, answer.status_code, answer.content[:2000])


def admin_action(client: Client, changelist: str, action: str, pks: list) -> None:
    answer = client.post(
        changelist, {"action": action, "_selected_action": [str(pk) for pk in pks], "index": 0}
    )
    assert answer.status_code == 302, (changelist, answer.status_code)
