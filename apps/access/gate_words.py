"""A gate rule in plain words, for the viewer who may not watch yet (pure: no Django, no I/O).

The watch page shows what a gated video needs before anyone signs in: which token, collection
or list, on which chain (its name, not its CAIP-2 id), how the conditions combine, and where to
look the contract up. ``gate_words`` turns a gate's normal form (``gates.gate_validate``) into a
small tree of sentences that a template renders as nested lists; the chain names and explorer
links come from the caller (``apps.chain.chains``), so this module stays testable in
milliseconds.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChainLabel:
    """How a chain is named to viewers, and where its addresses can be looked up."""

    name: str
    explorer: str = (
        ""  # an address page with "{address}", e.g. "https://etherscan.io/address/{address}"
    )

    def address_url(self, address: str) -> str:
        return self.explorer.replace("{address}", address) if self.explorer else ""


@dataclass(frozen=True)
class Requirement:
    """One sentence of a gate: a condition (with its contract and explorer link) or a
    combination (whose ``children`` are the conditions it combines)."""

    text: str
    address: str = ""  # the contract or collection the sentence names
    chain: str = ""  # the chain's name
    link: str = ""  # the address on the chain's explorer, when the chain has one
    link_label: str = ""
    children: tuple["Requirement", ...] = field(default_factory=tuple)


def gate_words(gate: Mapping[str, Any], chain_label: Callable[[str], ChainLabel]) -> Requirement:
    """The plain-words tree of ``gate`` (a normal form). ``chain_label`` names a CAIP-2 id.
    A top-level "any"/"all" of one rule is that rule; the root of a combination says how its
    children combine ("Any one of these", "All of these", ...)."""
    return _node(dict(gate), chain_label)


def _node(node: dict[str, Any], label: Callable[[str], ChainLabel]) -> Requirement:
    ((kind, body),) = node.items()
    if kind in ("any", "all", "at_least"):
        rules = body["of"] if kind == "at_least" else body
        if len(rules) == 1:
            return _node(rules[0], label)
        if kind == "any":
            text = "Any one of these:"
        elif kind == "all":
            text = "All of these:"
        else:
            text = f"At least {body['count']} of these:"
        return Requirement(text, children=tuple(_node(rule, label) for rule in rules))
    if kind == "not":
        return Requirement("You must not meet this:", children=(_node(body, label),))
    if kind == "allowlist":
        count = len(body["accounts"])
        if count == 1:
            return Requirement("Sign in with the one wallet the creator has listed.")
        return Requirement(f"Sign in with one of the {count} wallets the creator has listed.")
    chain = label(body["chain"])
    if kind == "purchase":
        return Requirement(f"Buy or rent this video on {chain.name}.", chain=chain.name)
    if kind == "membership":
        return Requirement(
            f"Hold a current membership of this creator on {chain.name}.", chain=chain.name
        )
    if kind == "metaplex":
        address = body["collection"]
        text = f"Hold an NFT of the verified collection {address} on {chain.name}."
    else:
        address = body["contract"]
        tokens, standard = _tokens(kind, body), _standard(kind)
        text = f"Hold {tokens} of the {standard} contract {address} on {chain.name}."
    link = chain.address_url(address)
    host = link.split("://", 1)[-1].split("/", 1)[0]
    return Requirement(
        text,
        address=address,
        chain=chain.name,
        link=link,
        link_label=f"View on {host}" if link else "",
    )


def _standard(kind: str) -> str:
    return {"erc721": "ERC-721 (NFT)", "erc1155": "ERC-1155"}[kind]


def _tokens(kind: str, body: Mapping[str, Any]) -> str:
    ids = body.get("token_id")
    ids = [] if ids is None else [ids] if isinstance(ids, str) else list(ids)
    which = " or ".join(f"#{token}" for token in ids)
    if kind == "erc721":
        return f"token {which}" if ids else "any token"
    balance = int(body.get("min_balance", 1))
    amount = "" if balance == 1 else f"at least {balance} of "
    many = "token" if len(ids) == 1 else "one of the tokens"
    return f"{amount}{many} {which}"
