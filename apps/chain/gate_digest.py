"""What a registration records of a content's gate: the canonical JSON of its normal form (as
access's ``gate_validate`` returns it) and that JSON's keccak256, so that anyone can check that
the rule StreamGate enforces is the one the creator registered on the ContentRegistry."""

import json
from typing import Any

from eth_utils import keccak

ZERO_HASH = "0x" + "00" * 32


def gate_canonical(gate: dict[str, Any] | None) -> str:
    """UTF-8 JSON with sorted keys and no insignificant whitespace."""
    return json.dumps(
        gate, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def gate_hash(gate: dict[str, Any] | None) -> str:
    """0x-prefixed keccak256 of the canonical form; all zeros for an open content (no gate)."""
    if gate is None:
        return ZERO_HASH
    return "0x" + keccak(text=gate_canonical(gate)).hex()
