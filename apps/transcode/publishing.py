"""Copy a finished job folder to storage under the job's prefix, with the right headers."""

from collections.abc import Callable
from pathlib import Path

from apps.content.storage import storage_put_file
from apps.transcode.packaging import cache_control_of, content_type_of


def publish_outputs(
    folder: Path, files: list[str], *, prefix: str, on_file: Callable[[int, int], object]
) -> None:
    """Upload ``files`` (relative to ``folder``, in order) to ``prefix``; ``on_file(done,
    total)`` after each one. Players can reach nothing until the job is published in the
    database, so a half-copied folder is never seen."""
    for done, name in enumerate(files, start=1):
        storage_put_file(
            str(folder / name),
            prefix + name,
            content_type=content_type_of(name),
            cache_control=cache_control_of(name),
        )
        on_file(done, len(files))
