"""Gate rules as data: validation with paths, normal and canonical forms, three-valued logic."""

import pytest
from eth_utils import keccak

from apps.access.gates import (
    Condition,
    GateInvalid,
    Wallet,
    allowlist_match,
    gate_bind,
    gate_conditions,
    gate_decide,
    gate_explain,
    gate_validate,
)
from apps.chain.gate_digest import gate_canonical, gate_hash

NFT = "0x" + "12" * 20
NFT_CHECKSUM = "0x1212121212121212121212121212121212121212"
COLLECTION = "J1S9H3QjnRtBbbuD4HjPV6RpRhwuk4zKbxsnCHuTgh9w"
ALICE = "0x4CCeBa2d7D2B4fdcE4304d3e09a1fea9fbEb1528"
SOL = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"


def erc721(token_id=None, chain="eip155:1"):
    return {"erc721": {"chain": chain, "contract": NFT, "token_id": token_id}}


def condition(token_ids=()):
    return Condition("erc721", "eip155:1", NFT_CHECKSUM, tuple(token_ids))


def test_normal_form_checksums_and_stringifies():
    gate = gate_validate(
        {
            "at_least": {
                "count": 1,
                "of": [
                    erc721(),
                    {"erc1155": {"chain": "eip155:137", "contract": NFT, "token_id": 7}},
                    erc721(token_id=["3", 2, "3"]),
                    {"allowlist": {"accounts": [f"eip155:1:{ALICE.lower()}"]}},
                ],
            }
        }
    )
    rules = gate["at_least"]["of"]
    assert rules[0] == {"erc721": {"chain": "eip155:1", "contract": NFT_CHECKSUM, "token_id": None}}
    assert rules[1]["erc1155"] == {
        "chain": "eip155:137",
        "contract": NFT_CHECKSUM,
        "token_id": "7",
        "min_balance": "1",
    }
    assert rules[2]["erc721"]["token_id"] == ["2", "3"]  # sorted, deduplicated
    assert rules[3] == {"allowlist": {"accounts": [f"eip155:1:{ALICE}"]}}
    assert gate_validate(gate) == gate  # the normal form is a fixed point
    assert gate_validate(None) is None


@pytest.mark.parametrize(
    ("gate", "path", "message"),
    [
        ({}, "$", "exactly one key"),
        ({"any": [erc721()], "all": [erc721()]}, "$", "exactly one key"),
        ({"some": []}, "$", "unknown rule"),
        ({"any": []}, "$.any", "non-empty"),
        ({"all": "x"}, "$.all", "non-empty"),
        ({"not": {"nope": 1}}, "$.not", "unknown rule"),
        ({"at_least": {"count": 3, "of": [erc721(), erc721()]}}, "$.at_least.count", "1 to 2"),
        ({"at_least": {"count": True, "of": [erc721()]}}, "$.at_least.count", "integer"),
        ({"at_least": {"of": [erc721()]}}, "$.at_least", "missing ['count']"),
        ({"erc721": {"chain": "eip155:1"}}, "$.erc721", "missing ['contract']"),
        (
            {"erc721": {"chain": "eip155:1", "contract": NFT, "colour": 1}},
            "$.erc721.colour",
            "unknown key",
        ),
        (erc721(chain="ethereum"), "$.erc721.chain", "CAIP-2"),
        (erc721(chain="solana:mainnet"), "$.erc721.chain", "EVM"),
        ({"erc721": {"chain": "eip155:1", "contract": "0x12"}}, "$.erc721.contract", "20-byte"),
        (
            {"erc721": {"chain": "eip155:1", "contract": "0x" + "aB" * 20}},
            "$.erc721.contract",
            "checksum",
        ),
        (
            {"erc721": {"chain": "eip155:1", "contract": "0x" + "00" * 20}},
            "$.erc721.contract",
            "zero address",
        ),
        (erc721(token_id="-1"), "$.erc721.token_id", "decimal"),
        (erc721(token_id="007"), "$.erc721.token_id", "decimal"),
        (erc721(token_id=str(2**256)), "$.erc721.token_id", "2**256-1"),
        (erc721(token_id=[]), "$.erc721.token_id", "1 to 100"),
        ({"any": [erc721(), erc721(token_id=1.5)]}, "$.any[1].erc721.token_id", "decimal"),
        (
            {"erc1155": {"chain": "eip155:1", "contract": NFT, "token_id": None}},
            "$.erc1155.token_id",
            "token id",
        ),
        (
            {"erc1155": {"chain": "eip155:1", "contract": NFT, "token_id": "1", "min_balance": 0}},
            "$.erc1155.min_balance",
            "between 1",
        ),
        (
            {
                "erc1155": {
                    "chain": "eip155:1",
                    "contract": NFT,
                    "token_id": "1",
                    "min_balance": "1e3",
                }
            },
            "$.erc1155.min_balance",
            "decimal",
        ),
        (
            {"metaplex": {"chain": "eip155:1", "collection": COLLECTION}},
            "$.metaplex.chain",
            "Solana",
        ),
        (
            {"metaplex": {"chain": "solana:mainnet", "collection": "0OIl"}},
            "$.metaplex.collection",
            "base58",
        ),
        ({"allowlist": {"accounts": []}}, "$.allowlist.accounts", "1 to 1000"),
        ({"purchase": {}}, "$.purchase", "missing ['chain']"),
        ({"purchase": {"chain": "solana:mainnet"}}, "$.purchase.chain", "EVM"),
        (
            {"membership": {"chain": "eip155:1", "creator": "0x12"}},
            "$.membership.creator",
            "unknown",
        ),
        ({"purchase": {"chain": "eip155:1", "content": "x"}}, "$.purchase.content", "unknown"),
        ({"allowlist": {"accounts": ["0x12"]}}, "$.allowlist.accounts[0]", "CAIP-10"),
        (
            {"allowlist": {"accounts": [f"solana:mainnet:{SOL}", "cosmos:hub:abc"]}},
            "$.allowlist.accounts[1]",
            "CAIP-10",
        ),
    ],
)
def test_invalid_rules_name_the_bad_node(gate, path, message):
    with pytest.raises(GateInvalid) as error:
        gate_validate(gate)
    assert error.value.path == path
    assert message in error.value.message


@pytest.mark.parametrize(
    ("gate", "path", "chain"),
    [
        (erc721(chain="eip155:137"), "$.erc721.chain", "eip155:137"),
        (
            {"not": {"all": [erc721(), erc721(chain="eip155:10")]}},
            "$.not.all[1].erc721.chain",
            "eip155:10",
        ),
        (
            {"erc1155": {"chain": "eip155:8453", "contract": NFT, "token_id": "1"}},
            "$.erc1155.chain",
            "eip155:8453",
        ),
        (
            {"metaplex": {"chain": "solana:devnet", "collection": COLLECTION}},
            "$.metaplex.chain",
            "solana:devnet",
        ),
        (
            {"any": [erc721(), {"purchase": {"chain": "eip155:10"}}]},
            "$.any[1].purchase.chain",
            "eip155:10",
        ),
        ({"membership": {"chain": "eip155:137"}}, "$.membership.chain", "eip155:137"),
    ],
)
def test_a_condition_on_a_chain_without_rpc_is_invalid(gate, path, chain):
    with pytest.raises(GateInvalid) as error:
        gate_validate(gate, chains={"eip155:1", "solana:mainnet"})
    assert error.value.path == path
    assert f"no RPC is configured for {chain}" in error.value.message
    assert "eip155:1, solana:mainnet" in error.value.message  # what can be used instead


def test_the_configured_chains_leave_valid_gates_and_allowlists_alone():
    gate = {"any": [erc721(), {"allowlist": {"accounts": [f"eip155:137:{ALICE}"]}}]}
    assert gate_validate(gate, chains=["eip155:1"]) == gate_validate(gate)
    assert gate_validate({"allowlist": {"accounts": [f"eip155:137:{ALICE}"]}}, chains=[])


def test_a_typo_is_reported_before_a_missing_rpc():
    with pytest.raises(GateInvalid) as error:
        gate_validate({"erc721": {"chain": "eip155:137", "contract": "0x12"}}, chains=[])
    assert error.value.path == "$.erc721.contract"


def test_size_and_depth_are_bounded():
    deep = erc721()
    for _ in range(8):
        deep = {"not": deep}
    with pytest.raises(GateInvalid, match="nest at most"):
        gate_validate(deep)
    with pytest.raises(GateInvalid, match="at most 64 rules"):
        gate_validate({"any": [erc721(token_id=str(i)) for i in range(64)]})


def test_canonical_form_and_hash_are_stable():
    gate = gate_validate({"any": [erc721(), {"allowlist": {"accounts": [f"eip155:1:{ALICE}"]}}]})
    canonical = gate_canonical(gate)
    assert " " not in canonical
    assert canonical.startswith('{"any":[{"erc721":{"chain":"eip155:1","contract":')
    assert gate_hash(gate) == "0x" + keccak(text=canonical).hex()
    reordered = {
        "any": [
            {"erc721": {"token_id": None, "contract": NFT_CHECKSUM, "chain": "eip155:1"}},
            gate["any"][1],
        ]
    }
    assert gate_hash(reordered) == gate_hash(gate)
    assert gate_hash(None) == "0x" + "00" * 32


def test_conditions_are_collected_once_each():
    gate = gate_validate({"all": [erc721(), {"not": erc721()}, {"any": [erc721(token_id="5")]}]})
    assert gate_conditions(gate) == [condition(), condition(["5"])]


@pytest.mark.parametrize(
    ("gate", "answers", "expected"),
    [
        ({"any": [erc721(), erc721("5")]}, {(): True, ("5",): None}, True),
        ({"any": [erc721(), erc721("5")]}, {(): False, ("5",): None}, None),
        ({"any": [erc721(), erc721("5")]}, {(): False, ("5",): False}, False),
        ({"all": [erc721(), erc721("5")]}, {(): False, ("5",): None}, False),
        ({"all": [erc721(), erc721("5")]}, {(): True, ("5",): None}, None),
        ({"all": [erc721(), erc721("5")]}, {(): True, ("5",): True}, True),
        ({"not": erc721()}, {(): True}, False),
        ({"not": erc721()}, {(): False}, True),
        ({"not": erc721()}, {(): None}, None),
        (
            {"at_least": {"count": 2, "of": [erc721(), erc721("5"), erc721("6")]}},
            {(): True, ("5",): None, ("6",): True},
            True,
        ),
        (
            {"at_least": {"count": 2, "of": [erc721(), erc721("5"), erc721("6")]}},
            {(): False, ("5",): None, ("6",): False},
            False,
        ),
        (
            {"at_least": {"count": 2, "of": [erc721(), erc721("5"), erc721("6")]}},
            {(): True, ("5",): None, ("6",): False},
            None,
        ),
    ],
)
def test_three_valued_decisions(gate, answers, expected):
    normal = gate_validate(gate)
    held = {condition(ids): value for ids, value in answers.items()}
    assert gate_decide(normal, held, []) is expected


def test_allowlist_matching_respects_contract_wallet_chains():
    accounts = [f"eip155:137:{ALICE}", f"solana:devnet:{SOL}"]
    assert allowlist_match(accounts, [Wallet("eip155", ALICE)])  # a key works on every chain
    assert allowlist_match(accounts, [Wallet("eip155", ALICE, chain="eip155:137")])
    assert not allowlist_match(accounts, [Wallet("eip155", ALICE, chain="eip155:1")])
    assert allowlist_match(accounts, [Wallet("solana", SOL)])
    assert not allowlist_match(accounts, [Wallet("solana", ALICE)])
    assert not allowlist_match(accounts, [])


def test_explanations_say_what_is_missing():
    gate = gate_validate({"all": [erc721(), {"not": erc721("5")}]})
    explanation = gate_explain(gate, {condition(): False, condition(["5"]): True}, [])
    assert explanation.result is False
    unmet = explanation.unmet()
    assert any("ERC-721" in line and "not held" in line for line in unmet)
    assert any(line.startswith("not allowed to hold") for line in unmet)
    tree = explanation.as_dict()
    assert tree["rule"] == "all"
    assert [child["result"] for child in tree["children"]] == [False, False]


def test_market_rules_are_bound_to_the_content_they_gate():
    gate = gate_validate(
        {
            "any": [
                {"purchase": {"chain": "eip155:1"}},
                {"not": {"membership": {"chain": "eip155:1"}}},
            ]
        }
    )
    assert gate == {
        "any": [{"purchase": {"chain": "eip155:1"}}, {"not": {"membership": {"chain": "eip155:1"}}}]
    }
    # The stored rule names no content; evaluation binds it (and the chain's registry).
    with pytest.raises(ValueError, match="bound"):
        gate_conditions(gate)
    bound = gate_bind(gate, "c0ffee", registries={"eip155:1": NFT})
    purchase, membership = gate_conditions(bound)
    assert (purchase.kind, purchase.contract, purchase.token_ids) == (
        "purchase",
        "registry",
        ("c0ffee", NFT),
    )
    assert membership.kind == "membership"
    assert "this content" in purchase.describe()
    unbound = gate_bind(gate, "c0ffee", registries={})
    assert gate_conditions(unbound)[0].token_ids == ("c0ffee", "")
