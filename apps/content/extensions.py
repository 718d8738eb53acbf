"""The core's extension points: what other apps contribute to a content, registered from their
``AppConfig.ready()``. The content app imports no other app; they hook in here.

Who registers what:

- ``apps.access`` registers the gate normaliser (``gate_normalizer_register``): the one check
  a gate rule passes before it is saved (known kinds, well-formed addresses, chains with an RPC).
- ``apps.access`` also registers the ``views`` field and the ``views`` sort of content lists
  (``list_sort_register``).
- ``apps.chain`` registers the ``onchain`` and ``ipfs`` fields of a content's JSON
  (``output_field_register``), with the related rows they read (prefetched by
  ``content_visible_to``).

The registries are plain module state filled once at start-up, before any request; a second
registration under the same name replaces the first (``ready()`` may run twice in tests).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

Gate = dict[str, Any] | None


class GateInvalid(ValueError):
    """A gate rule that cannot be enforced; ``path`` points at the bad node (``$.any[1]...``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


_gate_normalizer: Callable[[Gate], Gate] | None = None
# name -> (a factory of the serializer field, related lookups it reads)
_output_fields: dict[str, tuple[Callable[[], Any], tuple[str, ...]]] = {}


def gate_normalizer_register(normalizer: Callable[[Gate], Gate]) -> None:
    """``normalizer(gate)`` returns the rule's normal form or raises GateInvalid."""
    global _gate_normalizer  # the registry is this module's state
    _gate_normalizer = normalizer


def gate_normalize(gate: Gate) -> Gate:
    """The gate's normal form (None stays None). Without a registered normaliser nothing could
    enforce a rule, so every rule is refused."""
    if gate is None:
        return None
    if _gate_normalizer is None:
        raise GateInvalid("$", "gates are not enforced on this server")
    return _gate_normalizer(gate)


def output_field_register(
    name: str, factory: Callable[[], Any], *, prefetch: tuple[str, ...] = ()
) -> None:
    """Add field ``name`` (``factory()`` builds a read-only serializer field whose source is
    the content) to a content's JSON, reading the related rows ``prefetch``."""
    _output_fields[name] = (factory, prefetch)


def output_fields() -> dict[str, Any]:
    """Fresh instances of the contributed fields, in registration order."""
    return {name: factory() for name, (factory, _) in _output_fields.items()}


def output_prefetches() -> list[str]:
    """The related lookups the contributed fields read."""
    return [lookup for _, lookups in _output_fields.values() for lookup in lookups]


@dataclass(frozen=True)
class ListSort:
    """One way to order a content list: ``apply(contents)`` returns them ordered."""

    name: str
    label: str
    apply: Callable[[QuerySet], QuerySet]


_list_sorts: dict[str, ListSort] = {}


def list_sort_register(name: str, label: str, apply: Callable[[QuerySet], QuerySet]) -> None:
    """Offer ``?sort=name`` on content lists, ordering them with ``apply``."""
    _list_sorts[name] = ListSort(name, label, apply)


def list_sorts() -> dict[str, ListSort]:
    """The registered sorts, in registration order."""
    return dict(_list_sorts)
