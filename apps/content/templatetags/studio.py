"""Template helpers of the creator's pages (studio list, edit): the versioned poster and a
status in plain words. (Icons: apps/access/templatetags/icons.py.)"""

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from apps.content.models import Content
from apps.content.progress import phase_label
from apps.content.selectors import content_playable_seconds, content_retryable, poster_url

register = template.Library()


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


@register.filter
def playable_seconds(content: Content) -> float | None:
    """Seconds of the content that can be watched now (all of a ready one, the published
    chunks of a long one still processing), or None when none can."""
    return content_playable_seconds(content)


@register.filter
def early_playable(content: Content) -> bool:
    """Whether the content is still processing but can already be watched from the start."""
    return content.status == "processing" and content_playable_seconds(content) is not None
