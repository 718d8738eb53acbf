"""The 503 an upload request answers when storage fails under it (creation or a PATCH)."""

from apps.content.storage import StorageUnavailable
from streamgate.exceptions import Unavailable
from streamgate.metrics import UPLOAD_STORAGE_ERRORS
from streamgate.outages import REASON, STORAGE, outage_of, outage_recorded, unavailable


def storage_unavailable(error: StorageUnavailable, *, upload_id: str) -> Unavailable:
    """The 503 for storage that failed (logged and counted once): a local disk that is full or
    read-only (someone must act: Retry-After 30 s), else storage that did not answer (5 s)."""
    outage_recorded(STORAGE, error, action="refused", upload_id=upload_id)
    UPLOAD_STORAGE_ERRORS.labels(stage="receive").inc()
    if outage_of(error) == STORAGE:
        return unavailable(STORAGE)
    return Unavailable(
        "Storage is unavailable; try again shortly.", reason=REASON, dependency=STORAGE
    )
