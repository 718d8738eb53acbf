"""Wallet sign-in messages: Sign-In with Ethereum (EIP-4361) and Sign In With Solana (the
wallet-standard / Phantom format). Pure checks: no Django, no database; the only I/O is the
ERC-1271 call, through a provider the caller passes.

The ``siwe`` package parses and verifies signatures but skips what it is not asked (domain,
nonce, scheme) and never checks the chain id, the URI or how old a message is: those are checked
here against a ``SignInPolicy`` built from settings, never from request headers. Every rejection
is a ``SignInRejected`` with a machine-readable reason.
"""

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct

SIWS_HEADER = " wants you to sign in with your Solana account:"
SIWE_MAX_SIGNATURE_BYTES = 2048  # ERC-1271 signatures (multisig owners' signatures) can be long


class SignInRejected(Exception):
    """The message or its signature is not acceptable; answered 401 with ``reason``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SignatureCheckUnavailable(Exception):
    """The chain a contract wallet lives on could not be asked (ERC-1271); worth retrying."""


@dataclass(frozen=True)
class SignInPolicy:
    """What a sign-in message must say, from settings."""

    domain: str  # host[:port] of this site, as the message's first line names it
    scheme: str  # http | https
    origin: str  # scheme://host[:port]: the message's URI must be on this origin
    evm_chain_ids: frozenset[int]
    solana_chains: frozenset[str]  # CAIP-2, e.g. solana:mainnet
    max_length: int
    clock_skew: timedelta
    max_age: timedelta


@dataclass(frozen=True)
class SignInClaim:
    """What a verified message proves: ``address`` signed a fresh message carrying ``nonce``."""

    namespace: str  # eip155 | solana
    chain: str  # CAIP-2 the message names
    address: str
    nonce: str
    contract_wallet: bool = False  # verified by ERC-1271 (valid on ``chain`` only)

    @property
    def caip10(self) -> str:
        return f"{self.chain}:{self.address}"


# --- checks both formats share -----------------------------------------------------------------


def _check_length(text: str, policy: SignInPolicy) -> None:
    if len(text) > policy.max_length:
        raise SignInRejected(
            "message_too_long", f"The message is longer than {policy.max_length} characters."
        )


def _check_origin(*, domain: str, scheme: str | None, uri: str, policy: SignInPolicy) -> None:
    if domain.lower() != policy.domain.lower():
        raise SignInRejected(
            "domain_mismatch", f"The message is for {domain}, not {policy.domain}."
        )
    # EIP-4361: a message without a scheme is for https.
    if (scheme or "https").lower() != policy.scheme:
        raise SignInRejected(
            "scheme_mismatch", f"The message's scheme is {scheme or 'https'}, not {policy.scheme}."
        )
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. "https://[x": not a URL at all
        raise SignInRejected(
            "uri_mismatch", f"The message's URI must be on {policy.origin}."
        ) from None
    if f"{parts.scheme}://{parts.netloc}".lower() != policy.origin.lower():
        raise SignInRejected("uri_mismatch", f"The message's URI must be on {policy.origin}.")


def _check_times(
    *,
    issued_at: datetime,
    expiration: datetime | None,
    not_before: datetime | None,
    now: datetime,
    policy: SignInPolicy,
) -> None:
    if issued_at > now + policy.clock_skew:
        raise SignInRejected("issued_in_future", "The message was issued in the future.")
    if issued_at < now - policy.max_age:
        raise SignInRejected(
            "issued_too_long_ago",
            f"The message was issued more than {int(policy.max_age.total_seconds())} s ago.",
        )
    if expiration is not None and now >= expiration:
        raise SignInRejected("expired", "The message has expired.")
    if not_before is not None and now + policy.clock_skew < not_before:
        raise SignInRejected("not_yet_valid", "The message is not valid yet (Not Before).")


def _check_message_times(message: Any, policy: SignInPolicy, *, now: datetime) -> None:
    """The time fields of a SIWE or SIWS message (both name them alike), checked."""
    _check_times(
        issued_at=_timestamp(message.issued_at, "Issued At"),
        expiration=_timestamp(message.expiration_time, "Expiration Time")
        if message.expiration_time
        else None,
        not_before=_timestamp(message.not_before, "Not Before") if message.not_before else None,
        now=now,
        policy=policy,
    )


def _timestamp(value: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise SignInRejected("malformed_message", f"{field} is not an ISO 8601 time with a zone.")
    return moment


# --- Sign-In with Ethereum ---------------------------------------------------------------------


def siwe_parse(text: str, policy: SignInPolicy, *, now: datetime) -> Any:
    """The parsed ``siwe.SiweMessage`` if ``text`` is an acceptable EIP-4361 message now."""
    _check_length(text, policy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # abnf's grammar warnings, once per process
        from siwe import SiweMessage

    try:
        # siwe's ABNF parser takes time quadratic in the length (1 s for 4 KB, measured);
        # its regular-expression parser is linear, and the round trip below keeps it strict.
        message = SiweMessage.from_message(text, abnf=False)
    except ValueError as error:
        if "EIP-55" in str(error):
            raise SignInRejected(
                "address_not_checksummed", "The address must be EIP-55 checksummed."
            ) from None
        raise SignInRejected("malformed_message", "Not an EIP-4361 message.") from None
    if message.prepare_message() != text:
        raise SignInRejected("malformed_message", "Not an EIP-4361 message in canonical form.")
    _check_origin(domain=message.domain, scheme=message.scheme, uri=message.uri, policy=policy)
    if message.chain_id not in policy.evm_chain_ids:
        raise SignInRejected(
            "chain_not_allowed", f"Chain {message.chain_id} is not accepted for sign-in."
        )
    _check_message_times(message, policy, now=now)
    return message


def siwe_signature_bytes(signature: str) -> bytes:
    """The signature's bytes; a malformed one is rejected before any cryptography runs."""
    if (
        not isinstance(signature, str)
        or not re.fullmatch(r"0x([0-9a-fA-F]{2})+", signature)
        or not 65 <= (len(signature) - 2) // 2 <= SIWE_MAX_SIGNATURE_BYTES
    ):
        raise SignInRejected(
            "bad_signature", "The signature must be 0x-prefixed hex of at least 65 bytes."
        )
    return bytes.fromhex(signature[2:])


def siwe_verify(
    message: Any, text: str, signature: str, *, provider_for: Callable[[], Any], now: datetime
) -> SignInClaim:
    """The claim ``message`` proves, if ``signature`` is its owner's: an EOA's, or a contract
    wallet's by ERC-1271 on the message's chain, whose provider ``provider_for()`` gives (None
    where there is none). The chain is asked only when no key made the signature."""
    from eth_keys.exceptions import BadSignature
    from eth_utils.exceptions import ValidationError
    from siwe import VerificationError

    siwe_signature_bytes(signature)
    recovered = _recover(text, signature)
    if recovered != message.address:
        provider = provider_for()
        try:
            message.verify(signature, timestamp=now, provider=provider)
        except (VerificationError, BadSignature, ValidationError, ValueError):
            raise SignInRejected(
                "bad_signature", "The signature is not the address's signature of this message."
            ) from None
        except Exception as error:  # the contract wallet's chain did not answer
            raise SignatureCheckUnavailable(
                f"Could not check the contract wallet on chain {message.chain_id}: "
                f"{type(error).__name__}"
            ) from error
        if provider is None:  # pragma: no cover - verify() cannot pass without a provider
            raise SignInRejected("bad_signature", "The signature does not match.")
    return SignInClaim(
        namespace="eip155",
        chain=f"eip155:{message.chain_id}",
        address=message.address,
        nonce=message.nonce,
        contract_wallet=recovered != message.address,
    )


def _recover(text: str, signature: str) -> str | None:
    """The EOA that signed ``text`` (EIP-191), or None for a signature no key made."""
    from eth_keys.exceptions import BadSignature
    from eth_utils.exceptions import ValidationError

    try:
        return Account.recover_message(encode_defunct(text=text), signature=signature)
    except (BadSignature, ValidationError, ValueError, IndexError, TypeError):
        return None


# --- Sign In With Solana -----------------------------------------------------------------------

_SIWS_FIELDS = (
    ("uri", "URI"),
    ("version", "Version"),
    ("chain_id", "Chain ID"),
    ("nonce", "Nonce"),
    ("issued_at", "Issued At"),
    ("expiration_time", "Expiration Time"),
    ("not_before", "Not Before"),
    ("request_id", "Request ID"),
)
_SIWS_REQUIRED = ("uri", "version", "chain_id", "nonce", "issued_at")


@dataclass(frozen=True)
class SiwsMessage:
    domain: str
    address: str
    scheme: str | None = None
    statement: str | None = None
    uri: str | None = None
    version: str | None = None
    chain_id: str | None = None
    nonce: str | None = None
    issued_at: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()

    def text(self) -> str:
        """The message as wallets build it (wallet-standard ``createSignInMessageText``)."""
        origin = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        message = f"{origin}{SIWS_HEADER}\n{self.address}"
        if self.statement:
            message += f"\n\n{self.statement}"
        fields = [
            f"{label}: {getattr(self, name)}" for name, label in _SIWS_FIELDS if getattr(self, name)
        ]
        if self.resources:
            fields.append("Resources:" + "".join(f"\n- {item}" for item in self.resources))
        if fields:
            message += "\n\n" + "\n".join(fields)
        return message

    @property
    def caip2(self) -> str:
        chain = self.chain_id or ""
        return chain if chain.startswith("solana:") else f"solana:{chain}"


def siws_parse_text(text: str) -> SiwsMessage:
    """Parse a SIWS message; raises SignInRejected unless it re-serialises to the same text."""
    head, sep, rest = text.partition(SIWS_HEADER + "\n")
    if not sep or not head:
        raise SignInRejected("malformed_message", "Not a Sign In With Solana message.")
    scheme, _, domain = head.rpartition("://")
    address, _, rest = rest.partition("\n\n")
    blocks = rest.split("\n\n") if rest else []
    labels = {label: name for name, label in _SIWS_FIELDS}
    statement = None
    if blocks:
        first_line = blocks[0].split("\n", 1)[0]
        if first_line.partition(": ")[0] not in labels and first_line != "Resources:":
            statement = blocks.pop(0)
    values: dict[str, Any] = {}
    resources: list[str] = []
    lines = blocks.pop(0).split("\n") if blocks else []
    if blocks:
        raise SignInRejected("malformed_message", "Unexpected text after the message's fields.")
    in_resources = False
    for line in lines:
        if in_resources and line.startswith("- "):
            resources.append(line[2:])
            continue
        label, colon, value = line.partition(": ")
        if line == "Resources:":
            in_resources = True
        elif colon and label in labels and labels[label] not in values:
            values[labels[label]] = value
        else:
            raise SignInRejected("malformed_message", f"Unexpected line in the message: {line!r}")
    message = SiwsMessage(
        domain=domain,
        address=address,
        scheme=scheme or None,
        statement=statement,
        resources=tuple(resources),
        **values,
    )
    if message.text() != text:
        raise SignInRejected("malformed_message", "Not a Sign In With Solana message.")
    return message


def siws_parse(text: str, policy: SignInPolicy, *, now: datetime) -> SiwsMessage:
    """The parsed message if ``text`` is an acceptable SIWS message now."""
    _check_length(text, policy)
    message = siws_parse_text(text)
    missing = [name for name in _SIWS_REQUIRED if not getattr(message, name)]
    if missing:
        raise SignInRejected(
            "malformed_message", f"The message lacks {', '.join(sorted(missing))}."
        )
    if message.version != "1":
        raise SignInRejected("malformed_message", "Only version 1 messages are accepted.")
    _check_origin(domain=message.domain, scheme=message.scheme, uri=message.uri, policy=policy)
    if message.caip2 not in policy.solana_chains:
        raise SignInRejected(
            "chain_not_allowed", f"Chain {message.chain_id} is not accepted for sign-in."
        )
    _check_message_times(message, policy, now=now)
    return message


def siws_verify(message: SiwsMessage, text: str, signature: str, public_key: str) -> SignInClaim:
    """The claim ``message`` proves if ``signature`` (base58) is ``public_key``'s ed25519
    signature of exactly ``text``'s UTF-8 bytes, and the key is the message's address."""
    from solders.pubkey import Pubkey
    from solders.signature import Signature

    try:
        key = Pubkey.from_string(public_key)
        proof = Signature.from_string(signature)
    except (ValueError, TypeError):
        raise SignInRejected(
            "bad_signature", "The signature and public key must be base58."
        ) from None
    if str(key) != message.address:
        raise SignInRejected("bad_signature", "The public key is not the message's address.")
    if not proof.verify(key, text.encode()):
        raise SignInRejected(
            "bad_signature", "The signature is not the address's signature of this message."
        )
    return SignInClaim(
        namespace="solana", chain=message.caip2, address=message.address, nonce=message.nonce
    )
