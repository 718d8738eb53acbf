"""``{% icon "lock" %}``: the site's icons, inline SVG (no icon font, no emoji: Debian's
chromium has no emoji font), one file each in templates/icons/, hidden from assistive
technology (the control's text or label names it)."""

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag
def icon(name: str) -> SafeString:
    """The icon ``name`` (templates/icons/<name>.html)."""
    return mark_safe(render_to_string(f"icons/{name}.html"))  # noqa: S308 - our own files
