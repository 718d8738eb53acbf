"""What the transcode app does when other apps send signals."""

from apps.transcode.services import on_source_ready


def source_ready_received(sender, content_id: str, **kwargs) -> None:
    on_source_ready(content_id=content_id)
