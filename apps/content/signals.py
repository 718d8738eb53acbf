"""Signals of the core that other apps send and listen to."""

from django.dispatch import Signal

# Sent after commit when a content's uploaded source is stored, checked and the content is
# queued; kwargs: content_id (str). Sent by the uploads app; the transcode app starts
# encoding on it.
source_ready = Signal()
