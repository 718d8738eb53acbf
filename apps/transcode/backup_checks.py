"""What a restored backup needs from the stack it lands in: the master keys that open its content
keys (the archive never holds them). Registered with the core's backups in ``ready()``."""

from apps.transcode.keys import DERIVED_ID, master_key_fingerprint
from apps.transcode.models import DeliveryEncryption


def master_keys_needed() -> dict[str, str | None]:
    """Fingerprint of each master key some content key is wrapped under, by id."""
    ids = DeliveryEncryption.objects.values_list("master_key_id", flat=True).distinct()
    return {master_id: master_key_fingerprint(master_id) for master_id in sorted(set(ids))}


def master_keys_missing(needed: dict[str, str | None]) -> list[str]:
    """What this stack lacks of the master keys ``needed`` (as master_keys_needed gave them)."""
    problems = []
    for master_id, fingerprint in sorted(needed.items()):
        here = master_key_fingerprint(master_id)
        if fingerprint is None or here == fingerprint:
            continue  # the old stack could not open these either; nothing to compare
        if master_id == DERIVED_ID:
            problems.append(
                "Content keys are wrapped under the master key derived from the old stack's "
                "DJANGO_SECRET_KEY, and this stack's differs: set the same DJANGO_SECRET_KEY "
                "(make run keeps it in var/secret-key)."
            )
        elif here is None:
            problems.append(
                f"Content keys are wrapped under master key {master_id!r}, which "
                f"MEDIA_MASTER_KEYS does not hold here: set it as on the old stack."
            )
        else:
            problems.append(
                f"MEDIA_MASTER_KEYS[{master_id!r}] here is not the key the content keys were "
                f"wrapped under: set the old stack's value."
            )
    return problems
