"""``{{ seconds|clock }}``: a duration as players show it (0:42, 12:05, 1:02:03)."""

from django import template

register = template.Library()


@register.filter
def clock(seconds: float | None) -> str:
    """Whole seconds as m:ss, or h:mm:ss from an hour; empty for no duration."""
    if seconds is None or seconds < 0:
        return ""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
