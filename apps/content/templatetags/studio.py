"""Template helpers of the creator's pages (studio list, edit): the versioned poster, a status
in plain words, and the few inline SVG icons they use (no icon font, no emoji)."""

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from apps.content.models import Content
from apps.content.progress import phase_label
from apps.content.selectors import content_retryable, poster_url

register = template.Library()

_ICONS = {
    "play": '<path d="M8 5v14l11-7z"/>',
    "edit": '<path d="M4 20h4L19 9l-4-4L4 16zM14 6l4 4"/>',
    "trash": '<path d="M5 7h14M10 7V4h4v3M7 7l1 13h8l1-13"/>',
    "upload": '<path d="M12 16V4M6 10l6-6 6 6M4 20h16"/>',
    "x": '<path d="M6 6l12 12M18 6L6 18"/>',
}


@register.simple_tag
def icon(name: str) -> SafeString:
    """An inline SVG icon, hidden from assistive technology (the button's text names it)."""
    fill = ' fill="currentColor"' if name == "play" else ' fill="none" stroke="currentColor"'
    return mark_safe(  # noqa: S308 - the paths are this module's constants
        f'<svg class="icon" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" '
        f'focusable="false"{fill} stroke-width="2" stroke-linecap="round" '
        f'stroke-linejoin="round">{_ICONS[name]}</svg>'
    )


@register.filter
def poster_src(content: Content) -> str:
    """The content's versioned poster URL, or "" when it has none."""
    return poster_url(content) or ""


@register.simple_tag
def poster_img(content: Content) -> SafeString:
    """The content's poster (its versioned URL), or an empty frame of the same size."""
    url = poster_url(content)
    if url is None:
        return mark_safe('<img alt="" data-role="poster" hidden><span class="no-poster"></span>')
    return format_html('<img src="{}" alt="" data-role="poster" loading="lazy">', url)


@register.simple_tag
def status_label(content: Content) -> str:
    """The status in plain words, with the overall progress while it moves."""
    label = phase_label(content.status)
    if content.status in ("uploading", "queued", "processing"):
        return f"{label} {content.overall_progress}%"
    return label


@register.filter
def retryable(content: Content) -> bool:
    """Whether encoding the failed content again can help (not for a file that cannot be used)."""
    return content_retryable(content)
