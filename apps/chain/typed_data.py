"""EIP-712 typed data the registry verifies (a creator's offers and payout address) and the
EIP-2612 permit a buyer signs for an ERC-20 offer, as JSON that ``eth_signTypedData_v4`` takes
and ``eth_account.messages.encode_typed_data(full_message=...)`` hashes (pure: no Django, no I/O).

The type strings here and in ContentRegistry.sol must agree; the contract tests sign with these
builders, so a drift fails them.
"""

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address

NATIVE = "0x0000000000000000000000000000000000000000"
KIND_ACCESS, KIND_MEMBERSHIP = 0, 1
DOMAIN_NAME, DOMAIN_VERSION = "StreamGate ContentRegistry", "1"

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_OFFER_TERMS = [
    {"name": "kind", "type": "uint8"},
    {"name": "token", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "period", "type": "uint64"},
]


@dataclass(frozen=True)
class Terms:
    """One offer as the registry stores it: kind 0 access (period 0: for ever), 1 membership;
    token NATIVE for the chain's coin; amount in the smallest unit; period in seconds."""

    kind: int
    token: str
    amount: int
    period: int

    def as_tuple(self) -> tuple[int, str, int, int]:
        return (self.kind, to_checksum_address(self.token), self.amount, self.period)


def _domain(chain_id: int, registry: str) -> dict[str, Any]:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(registry),
    }


def set_offers_typed_data(
    *,
    chain_id: int,
    registry: str,
    content_id: bytes,
    terms: list[Terms],
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """What the creator signs to replace a content's offers (``content_id``: the bytes32)."""
    return {
        "types": {
            "EIP712Domain": _DOMAIN_TYPE,
            "SetOffers": [
                {"name": "contentId", "type": "bytes32"},
                {"name": "offers", "type": "OfferTerms[]"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
            "OfferTerms": _OFFER_TERMS,
        },
        "primaryType": "SetOffers",
        "domain": _domain(chain_id, registry),
        "message": {
            "contentId": "0x" + content_id.hex(),
            # Amounts as decimal strings: JSON numbers above 2**53 lose digits in browsers.
            "offers": [
                {
                    "kind": t.kind,
                    "token": to_checksum_address(t.token),
                    "amount": str(t.amount),
                    "period": t.period,
                }
                for t in terms
            ],
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def set_payout_typed_data(
    *, chain_id: int, registry: str, creator: str, payout: str, nonce: int, deadline: int
) -> dict[str, Any]:
    """What the creator signs to have their proceeds sent to ``payout``."""
    return {
        "types": {
            "EIP712Domain": _DOMAIN_TYPE,
            "SetPayout": [
                {"name": "creator", "type": "address"},
                {"name": "payout", "type": "address"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "SetPayout",
        "domain": _domain(chain_id, registry),
        "message": {
            "creator": to_checksum_address(creator),
            "payout": to_checksum_address(payout),
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def permit_typed_data(
    *,
    chain_id: int,
    token: str,
    token_name: str,
    token_version: str,
    owner: str,
    spender: str,
    value: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """An EIP-2612 permit letting ``spender`` (the registry) take ``value`` of ``owner``'s
    tokens; name and version are the token's own EIP-712 domain (EIP-5267)."""
    return {
        "types": {
            "EIP712Domain": _DOMAIN_TYPE,
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": token_name,
            "version": token_version,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(token),
        },
        "message": {
            "owner": to_checksum_address(owner),
            "spender": to_checksum_address(spender),
            "value": str(value),
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def _hashable(typed_data: dict[str, Any]) -> dict[str, Any]:
    """eth_account wants integers where the JSON carries decimal strings."""
    integers = {
        field["name"]
        for fields in typed_data["types"].values()
        for field in fields
        if field["type"].startswith(("uint", "int"))
    }

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: int(v) if k in integers and isinstance(v, str) else convert(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return {**typed_data, "message": convert(typed_data["message"])}


def typed_data_digest(typed_data: dict[str, Any]) -> bytes:
    """The 32-byte EIP-712 hash a wallet signs (and ERC-1271 wallets are asked about)."""
    signable = encode_typed_data(full_message=_hashable(typed_data))
    from eth_account.messages import _hash_eip191_message

    return _hash_eip191_message(signable)


def typed_data_signer(typed_data: dict[str, Any], signature: bytes) -> str | None:
    """The address whose key made ``signature`` over ``typed_data`` (None: not an ECDSA
    signature at all, e.g. an ERC-1271 wallet's)."""
    try:
        return Account.recover_message(
            encode_typed_data(full_message=_hashable(typed_data)), signature=signature
        )
    except Exception:  # noqa: BLE001 - any malformed signature is simply not an EOA's
        return None


def typed_data_sign(typed_data: dict[str, Any], key: str) -> bytes:
    """Sign as a wallet would (tests, demos and the local dev wallet)."""
    return Account.sign_message(
        encode_typed_data(full_message=_hashable(typed_data)), private_key=key
    ).signature
