"""Gate rules as data (pure: no Django, no I/O).

A gate is a JSON tree. Combinators: ``{"any": [...]}``, ``{"all": [...]}``,
``{"at_least": {"count": n, "of": [...]}}``, ``{"not": rule}``. Conditions:
``{"erc721": {"chain", "contract", "token_id"}}`` (``token_id`` null for any token of the
contract, a decimal string, or a list of them: any of those ids),
``{"erc1155": {"chain", "contract", "token_id", "min_balance"}}`` (one id or a list: any of them
with at least ``min_balance``), ``{"metaplex": {"chain", "collection"}}`` (an NFT of a verified
Metaplex collection on Solana), ``{"allowlist": {"accounts": [CAIP-10, ...]}}``, and the
market's: ``{"purchase": {"chain"}}`` (a current purchase or rental of the content itself in
that chain's ContentRegistry) and ``{"membership": {"chain"}}`` (a current pass of the
content's creator there). Those two name no content: ``gate_bind`` ties them to the content being
decided before evaluation.

``gate_validate`` checks a rule and returns its normal form (checksummed addresses, ids and
balances as decimal strings), or raises ``GateInvalid`` with the JSON path of the bad node. Given
the chains this server can ask (``chains``), it also refuses conditions on any other chain:
ownership there could never be checked, so no one could ever be let in.
The canonical JSON of the normal form, and its keccak256, are what the ContentRegistry stores
(``apps.chain.gate_digest``).

Evaluation is three-valued (Kleene): a condition whose answer is not known yet (or could not be
fetched) is ``None``; ``gate_decide`` answers True or False as soon as the known answers settle
it, and None when they do not, so that callers can stop asking RPC nodes early and never turn an
unknown into a "yes".
"""

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils import is_checksum_address, to_checksum_address

# The error is the core's (content checks a gate through the normaliser access registers).
from apps.content.extensions import GateInvalid

MAX_DEPTH = 8
MAX_NODES = 64
MAX_ALLOWLIST = 1000
MAX_TOKEN_IDS = 100
UINT256_MAX = 2**256 - 1

COMBINATORS = ("any", "all", "at_least", "not")
CONDITIONS = ("erc721", "erc1155", "metaplex", "allowlist", "purchase", "membership")
MARKET = ("purchase", "membership")
REGISTRY = "registry"  # the "contract" of market conditions: the chain's ContentRegistry

# "\Z", not "$": "$" also matches before a final newline, and "7\n" was stored as a token id.
_EVM_CHAIN = re.compile(r"^eip155:[1-9][0-9]{0,17}\Z")
_SOLANA_CHAIN = re.compile(r"^solana:[A-Za-z0-9]{1,32}\Z")
_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}\Z")
_BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}\Z")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,77})\Z")


@dataclass(frozen=True)
class Condition:
    """One ownership question a gate asks of a viewer's wallets."""

    kind: str  # erc721 | erc1155 | metaplex | purchase | membership
    chain: str  # CAIP-2
    # EIP-55 address, the collection's base58 mint for metaplex, REGISTRY for the market's
    # (whose token_ids hold the content id)
    contract: str
    token_ids: tuple[str, ...] = ()  # () means any token of the contract
    min_balance: int = 1

    def describe(self) -> str:
        if self.kind == "purchase":
            return f"a purchase or current rental of this content on {self.chain}"
        if self.kind == "membership":
            return f"a current membership of this content's creator on {self.chain}"
        if self.kind == "metaplex":
            return f"an NFT of the verified Metaplex collection {self.contract} on {self.chain}"
        ids = f" #{' or #'.join(self.token_ids)}" if self.token_ids else ""
        if self.kind == "erc1155":
            return f"{self.min_balance} of ERC-1155 {self.contract}{ids} on {self.chain}"
        return f"ERC-721 {self.contract}{ids or ' (any token)'} on {self.chain}"


@dataclass(frozen=True)
class Wallet:
    """A signed-in viewer's wallet, as gates see it."""

    namespace: str  # eip155 | solana
    address: str  # EIP-55 for eip155, base58 for solana
    chain: str = ""  # CAIP-2 where a contract wallet was verified; "" for key-held accounts

    def holds_on(self, chain: str) -> bool:
        """Whether this wallet speaks for its address on ``chain``. A key-held (EOA) address is
        the same account on every EVM chain; a contract wallet only where it was verified."""
        if chain.split(":", 1)[0] != self.namespace:
            return False
        return not self.chain or self.chain == chain


# --- validation and normal form ----------------------------------------------------------------


def gate_validate(gate: Any, *, chains: Collection[str] | None = None) -> dict[str, Any] | None:
    """The normal form of ``gate`` (None stays None: anyone may watch); raises GateInvalid.
    With ``chains`` (CAIP-2 ids), a token condition on a chain not among them is invalid."""
    if gate is None:
        return None
    counter = [0]
    return _node(gate, "$", 1, counter, chains)


def _node(
    node: Any, path: str, depth: int, counter: list[int], chains: Collection[str] | None
) -> dict[str, Any]:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise GateInvalid(path, f"a gate may have at most {MAX_NODES} rules")
    if depth > MAX_DEPTH:
        raise GateInvalid(path, f"a gate may nest at most {MAX_DEPTH} levels")
    if not isinstance(node, dict) or len(node) != 1:
        raise GateInvalid(
            path, f"each rule is an object with exactly one key, one of {COMBINATORS + CONDITIONS}"
        )
    ((kind, body),) = node.items()
    here = f"{path}.{kind}"
    if kind in ("any", "all"):
        return {kind: _rules(body, here, depth, counter, chains)}
    if kind == "at_least":
        _keys(body, here, required={"count", "of"})
        rules = _rules(body["of"], f"{here}.of", depth, counter, chains)
        count = body["count"]
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= len(rules):
            raise GateInvalid(f"{here}.count", f"an integer from 1 to {len(rules)}")
        return {kind: {"count": count, "of": rules}}
    if kind == "not":
        return {kind: _node(body, here, depth + 1, counter, chains)}
    if kind == "erc721":
        _keys(body, here, required={"chain", "contract"}, optional={"token_id"})
        spec = {"chain": _evm_chain(body["chain"], f"{here}.chain")}
        spec["contract"] = _evm_address(body["contract"], f"{here}.contract")
        spec["token_id"] = _token_ids(body.get("token_id"), f"{here}.token_id", nullable=True)
        _checkable(spec["chain"], here, chains)
        return {kind: spec}
    if kind == "erc1155":
        _keys(body, here, required={"chain", "contract", "token_id"}, optional={"min_balance"})
        spec = {"chain": _evm_chain(body["chain"], f"{here}.chain")}
        spec["contract"] = _evm_address(body["contract"], f"{here}.contract")
        spec["token_id"] = _token_ids(body["token_id"], f"{here}.token_id", nullable=False)
        spec["min_balance"] = _decimal(
            body.get("min_balance", "1"), f"{here}.min_balance", minimum=1
        )
        _checkable(spec["chain"], here, chains)
        return {kind: spec}
    if kind == "metaplex":
        _keys(body, here, required={"chain", "collection"})
        chain = body["chain"]
        if not isinstance(chain, str) or not _SOLANA_CHAIN.match(chain):
            raise GateInvalid(f"{here}.chain", "a Solana CAIP-2 id such as solana:mainnet")
        collection = _base58(body["collection"], f"{here}.collection")
        _checkable(chain, here, chains)
        return {kind: {"chain": chain, "collection": collection}}
    if kind in MARKET:
        _keys(body, here, required={"chain"})
        spec = {"chain": _evm_chain(body["chain"], f"{here}.chain")}
        _checkable(spec["chain"], here, chains)
        return {kind: spec}
    if kind == "allowlist":
        _keys(body, here, required={"accounts"})
        accounts = body["accounts"]
        if not isinstance(accounts, list) or not 1 <= len(accounts) <= MAX_ALLOWLIST:
            raise GateInvalid(f"{here}.accounts", f"a list of 1 to {MAX_ALLOWLIST} accounts")
        normal = [caip10_normalize(a, f"{here}.accounts[{i}]") for i, a in enumerate(accounts)]
        return {kind: {"accounts": sorted(set(normal))}}
    raise GateInvalid(path, f"unknown rule {kind!r}; use one of {COMBINATORS + CONDITIONS}")


def _rules(
    body: Any, path: str, depth: int, counter: list[int], chains: Collection[str] | None
) -> list[dict[str, Any]]:
    if not isinstance(body, list) or not body:
        raise GateInvalid(path, "a non-empty list of rules")
    return [_node(item, f"{path}[{i}]", depth + 1, counter, chains) for i, item in enumerate(body)]


def _checkable(chain: str, path: str, chains: Collection[str] | None) -> None:
    """Checked last in a condition, so that a typo elsewhere is reported first."""
    if chains is not None and chain not in chains:
        available = ", ".join(sorted(chains)) or "none"
        raise GateInvalid(
            f"{path}.chain",
            f"no RPC is configured for {chain} on this server, so no one's tokens there could "
            f"be checked; chains it can check: {available}",
        )


def _keys(body: Any, path: str, *, required: set[str], optional: frozenset | set = frozenset()):
    if not isinstance(body, dict):
        raise GateInvalid(path, f"an object with {sorted(required | set(optional))}")
    missing = required - set(body)
    if missing:
        raise GateInvalid(path, f"missing {sorted(missing)}")
    unknown = set(body) - required - set(optional)
    if unknown:
        raise GateInvalid(f"{path}.{sorted(unknown)[0]}", "unknown key")


def _evm_chain(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _EVM_CHAIN.match(value):
        raise GateInvalid(path, "an EVM CAIP-2 id such as eip155:1")
    return value


def _evm_address(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _EVM_ADDRESS.match(value):
        raise GateInvalid(path, "a 0x-prefixed 20-byte hex address")
    mixed = value[2:] != value[2:].lower() and value[2:] != value[2:].upper()
    if mixed and not is_checksum_address(value):
        raise GateInvalid(path, "mixed-case address with a wrong EIP-55 checksum (a typo?)")
    if int(value, 16) == 0:
        raise GateInvalid(path, "the zero address is not a contract")
    return to_checksum_address(value)


def _base58(value: Any, path: str) -> str:
    from solders.pubkey import Pubkey

    if isinstance(value, str) and _BASE58.match(value):
        try:
            return str(Pubkey.from_string(value))
        except ValueError:
            pass
    raise GateInvalid(path, "a base58 Solana address")


def _decimal(value: Any, path: str, *, minimum: int = 0) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _DECIMAL.match(value):
        raise GateInvalid(path, 'a non-negative integer as a decimal string, e.g. "7"')
    if not minimum <= int(value) <= UINT256_MAX:
        raise GateInvalid(path, f"between {minimum} and 2**256-1")
    return value


def _token_ids(value: Any, path: str, *, nullable: bool) -> str | list[str] | None:
    if value is None:
        if nullable:
            return None
        raise GateInvalid(path, "a token id (decimal string) or a list of them")
    if isinstance(value, list):
        if not 1 <= len(value) <= MAX_TOKEN_IDS:
            raise GateInvalid(path, f"a list of 1 to {MAX_TOKEN_IDS} token ids")
        ids = sorted({_decimal(v, f"{path}[{i}]") for i, v in enumerate(value)}, key=int)
        return ids if len(ids) > 1 else ids[0]
    return _decimal(value, path)


def caip10_normalize(value: Any, path: str = "$") -> str:
    """``eip155:<id>:<address>`` (checksummed) or ``solana:<ref>:<base58>``; raises GateInvalid."""
    expected = "a CAIP-10 account such as eip155:1:0xAb… or solana:mainnet:<base58>"
    if not isinstance(value, str) or value.count(":") != 2:
        raise GateInvalid(path, expected)
    namespace, reference, address = value.split(":")
    try:
        if namespace == "eip155":
            return f"{_evm_chain(f'eip155:{reference}', path)}:{_evm_address(address, path)}"
        if namespace == "solana" and _SOLANA_CHAIN.match(f"solana:{reference}"):
            return f"solana:{reference}:{_base58(address, path)}"
    except GateInvalid as error:
        raise GateInvalid(path, f"{expected} ({error.message})") from None
    raise GateInvalid(path, expected)


# --- evaluation --------------------------------------------------------------------------------


def gate_bind(
    gate: dict[str, Any], content_id: str, *, registries: Mapping[str, str]
) -> dict[str, Any]:
    """``gate`` (a normal form) with its market conditions tied to the content ``content_id``
    and to the registry of their chain (``registries``: CAIP-2 -> address; none there: nobody
    bought anything): what evaluation needs, never what is stored."""
    ((kind, body),) = gate.items()
    if kind in ("any", "all"):
        return {kind: [gate_bind(child, content_id, registries=registries) for child in body]}
    if kind == "at_least":
        rules = [gate_bind(child, content_id, registries=registries) for child in body["of"]]
        return {kind: {**body, "of": rules}}
    if kind == "not":
        return {kind: gate_bind(body, content_id, registries=registries)}
    if kind in MARKET:
        registry = registries.get(body["chain"], "")
        return {kind: {**body, "content": content_id, "registry": registry}}
    return gate


def condition_of(kind: str, spec: dict[str, Any]) -> Condition:
    if kind in MARKET:
        if "content" not in spec:
            raise ValueError("a market condition is evaluated bound to a content (gate_bind)")
        return Condition(kind, spec["chain"], REGISTRY, (spec["content"], spec["registry"]))
    if kind == "metaplex":
        return Condition(kind, spec["chain"], spec["collection"])
    ids = spec.get("token_id")
    token_ids = () if ids is None else tuple([ids] if isinstance(ids, str) else ids)
    return Condition(
        kind, spec["chain"], spec["contract"], token_ids, int(spec.get("min_balance", 1))
    )


def gate_conditions(gate: dict[str, Any]) -> list[Condition]:
    """The distinct ownership questions in ``gate`` (a normal form), in rule order."""
    found: dict[Condition, None] = {}

    def walk(node: dict[str, Any]) -> None:
        ((kind, body),) = node.items()
        if kind in ("any", "all"):
            for child in body:
                walk(child)
        elif kind == "at_least":
            for child in body["of"]:
                walk(child)
        elif kind == "not":
            walk(body)
        elif kind != "allowlist":
            found[condition_of(kind, body)] = None

    walk(gate)
    return list(found)


def allowlist_match(accounts: Iterable[str], wallets: Iterable[Wallet]) -> bool:
    """Whether a wallet is one of ``accounts`` (CAIP-10). An EVM key-held address matches its
    entry on any EVM chain; a contract wallet only on the chain it was verified on."""
    wallets = list(wallets)
    for account in accounts:
        namespace, reference, address = account.split(":")
        for wallet in wallets:
            if wallet.namespace != namespace or wallet.address != address:
                continue
            if namespace == "solana" or wallet.holds_on(f"{namespace}:{reference}"):
                return True
    return False


def gate_decide(
    gate: dict[str, Any], answers: Mapping[Condition, bool | None], wallets: Iterable[Wallet]
) -> bool | None:
    """True (may watch), False (may not) or None (the unknown answers would decide)."""
    return gate_explain(gate, answers, wallets).result


@dataclass
class Explanation:
    """How a rule node decided: its kind, result and why, with its children."""

    rule: str
    result: bool | None
    detail: str = ""
    children: list["Explanation"] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rule": self.rule, "result": self.result}
        if self.detail:
            data["detail"] = self.detail
        if self.children:
            data["children"] = [child.as_dict() for child in self.children]
        return data

    def unmet(self) -> list[str]:
        """Descriptions of the conditions that are false, for a "why not" message."""
        if self.result is not False:
            return []
        if self.rule == "not":
            return [f"not allowed to hold: {self.children[0].detail}"]
        if not self.children:
            return [self.detail] if self.detail else []
        return [line for child in self.children for line in child.unmet()]


def gate_explain(
    gate: dict[str, Any],
    answers: Mapping[Condition, bool | None],
    wallets: Iterable[Wallet],
    notes: Mapping[Condition, str] | None = None,
) -> Explanation:
    """The decision tree of ``gate`` under ``answers``; its ``result`` is the decision."""
    wallets = list(wallets)
    notes = notes or {}

    def walk(node: dict[str, Any]) -> Explanation:
        ((kind, body),) = node.items()
        if kind in ("any", "all", "at_least"):
            rules = body["of"] if kind == "at_least" else body
            need = {"any": 1, "all": len(rules)}.get(kind) or body["count"]
            children = [walk(child) for child in rules]
            yes = sum(child.result is True for child in children)
            no = sum(child.result is False for child in children)
            result = True if yes >= need else False if len(rules) - no < need else None
            label = kind if kind != "at_least" else f"at_least {need}"
            return Explanation(label, result, f"{yes} of {len(rules)} met", children)
        if kind == "not":
            child = walk(body)
            result = None if child.result is None else not child.result
            return Explanation("not", result, "", [child])
        if kind == "allowlist":
            hit = allowlist_match(body["accounts"], wallets)
            detail = "one of your wallets is listed" if hit else "none of your wallets is listed"
            return Explanation("allowlist", hit, detail)
        condition = condition_of(kind, body)
        result = answers.get(condition)
        state = {True: "held", False: "not held", None: "unknown"}[result]
        note = notes.get(condition, "")
        return Explanation(
            kind, result, f"{condition.describe()}: {state}" + (f" ({note})" if note else "")
        )

    return walk(gate)
