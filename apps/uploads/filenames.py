"""Turning a client's file name into one that is safe as the last part of a storage path."""

import os
import unicodedata

from django.core.exceptions import SuspiciousFileOperation
from django.utils.text import get_valid_filename

MAX_FILENAME = 150
FALLBACK = "source"


def sanitize_filename(name: str | None) -> str:
    """A safe file name: no folders, no control characters, at most 150 characters, the
    extension kept; ``source`` when nothing usable is left."""
    if not name:
        return FALLBACK
    name = unicodedata.normalize("NFC", name).replace("\\", "/")
    name = "".join(ch for ch in os.path.basename(name) if unicodedata.category(ch)[0] != "C")
    try:
        name = get_valid_filename(name.strip())
    except SuspiciousFileOperation:  # nothing usable was left ("", ".", "..")
        return FALLBACK
    name = name.lstrip(".")
    if not name:
        return FALLBACK
    stem, extension = os.path.splitext(name)
    extension = extension[:16]
    return (stem[: MAX_FILENAME - len(extension)] or FALLBACK) + extension
