"""A gate in plain words: chain names, contracts, explorer links and how rules combine (pure),
and the watch page that shows them to a viewer who may not watch (Django's client)."""

import pytest

from apps.access.gate_words import ChainLabel, Requirement, gate_words
from apps.access.gates import gate_validate
from apps.content.models import Content, ContentStatus
from tests.factories import ContentFactory

NFT = "0x1212121212121212121212121212121212121212"
PASS = "0x3434343434343434343434343434343434343434"
COLLECTION = "J1S9H3QjnRtBbbuD4HjPV6RpRhwuk4zKbxsnCHuTgh9w"
ALICE = "eip155:1:0x4CCeBa2d7D2B4fdcE4304d3e09a1fea9fbEb1528"
LABELS = {
    "eip155:137": ChainLabel("Polygon PoS", "https://polygonscan.com/address/{address}"),
    "eip155:31337": ChainLabel("Local (Hardhat/Anvil)"),
    "solana:mainnet": ChainLabel("Solana", "https://explorer.solana.com/address/{address}"),
}


def words(gate: dict) -> Requirement:
    return gate_words(gate_validate(gate), LABELS.__getitem__)


def test_an_nft_contract_names_its_chain_and_links_the_explorer():
    said = words({"erc721": {"chain": "eip155:137", "contract": NFT, "token_id": None}})
    assert said.text == (f"Hold any token of the ERC-721 (NFT) contract {NFT} on Polygon PoS.")
    assert said.chain == "Polygon PoS"
    assert said.address == NFT
    assert said.link == f"https://polygonscan.com/address/{NFT}"
    assert said.link_label == "View on polygonscan.com"
    assert said.children == ()


def test_token_ids_and_balances_are_spelled_out():
    one = words({"erc721": {"chain": "eip155:137", "contract": NFT, "token_id": ["7", "5"]}})
    assert one.text.startswith("Hold token #5 or #7 of the ERC-721 (NFT) contract")
    many = words(
        {"erc1155": {"chain": "eip155:137", "contract": NFT, "token_id": "3", "min_balance": 2}}
    )
    assert many.text.startswith("Hold at least 2 of token #3 of the ERC-1155 contract")
    single = words({"erc1155": {"chain": "eip155:137", "contract": NFT, "token_id": ["3", "4"]}})
    assert single.text.startswith("Hold one of the tokens #3 or #4 of the ERC-1155 contract")


def test_a_chain_without_explorer_has_no_link():
    said = words({"erc721": {"chain": "eip155:31337", "contract": NFT, "token_id": None}})
    assert said.text.endswith("on Local (Hardhat/Anvil).")
    assert said.link == ""
    assert said.link_label == ""


def test_combinations_say_any_all_at_least_and_not():
    said = words(
        {
            "any": [
                {"metaplex": {"chain": "solana:mainnet", "collection": COLLECTION}},
                {
                    "all": [
                        {"erc721": {"chain": "eip155:137", "contract": NFT, "token_id": None}},
                        {"allowlist": {"accounts": [ALICE]}},
                    ]
                },
                {
                    "at_least": {
                        "count": 2,
                        "of": [
                            {"erc721": {"chain": "eip155:137", "contract": NFT}},
                            {"erc721": {"chain": "eip155:137", "contract": PASS}},
                            {"not": {"allowlist": {"accounts": [ALICE, ALICE.lower()]}}},
                        ],
                    }
                },
            ]
        }
    )
    assert said.text == "Any one of these:"
    metaplex, both, two = said.children
    assert metaplex.text == f"Hold an NFT of the verified collection {COLLECTION} on Solana."
    assert metaplex.link == f"https://explorer.solana.com/address/{COLLECTION}"
    assert both.text == "All of these:"
    assert [child.text for child in both.children][1] == (
        "Sign in with the one wallet the creator has listed."
    )
    assert two.text == "At least 2 of these:"
    assert two.children[2].text == "You must not meet this:"
    # ALICE twice (two spellings) is one account once normalised.
    assert two.children[2].children[0].text == "Sign in with the one wallet the creator has listed."


def test_a_combination_of_one_rule_is_that_rule():
    said = words({"all": [{"allowlist": {"accounts": [ALICE, "eip155:1:" + PASS]}}]})
    assert said.text == "Sign in with one of the 2 wallets the creator has listed."
    assert said.children == ()


# --- the watch page ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_watch_page_explains_a_gate_by_chain_name_and_explorer(client, settings):
    settings.CHAIN_RPC_URLS = {"eip155:137": "http://127.0.0.1:9/"}  # never asked
    gate = {"erc721": {"chain": "eip155:137", "contract": NFT, "token_id": None}}
    content = ContentFactory(status=ContentStatus.READY, gate=gate, poster="posters/x.jpg")
    page = client.get(f"/watch/{content.id}/").content.decode()
    assert 'data-testid="gate-words"' in page
    assert f"contract {NFT} on Polygon PoS." in page
    assert f'href="https://polygonscan.com/address/{NFT}"' in page
    assert f'src="/posters/{content.id}.jpg?v=' in page  # the poster of a gated video is public
    assert "eip155:137" not in page.split('id="watch-config"')[0]


@pytest.mark.django_db
def test_a_gate_that_no_longer_validates_renders_without_words(client):
    content = ContentFactory(status=ContentStatus.READY)
    # Saved raw, as before validation existed: the page must still render (playback explains).
    Content.objects.filter(pk=content.pk).update(gate={"erc721": {"chain": "nope"}})
    response = client.get(f"/watch/{content.id}/")
    assert response.status_code == 200
    assert 'data-testid="gate-words"' not in response.content.decode()


@pytest.mark.django_db
def test_an_open_video_has_no_gate_words(client):
    content = ContentFactory(status=ContentStatus.READY)
    page = client.get(f"/watch/{content.id}/").content.decode()
    assert 'data-testid="gate-words"' not in page


def test_purchases_and_memberships_are_said_plainly():
    said = words(
        {"any": [{"purchase": {"chain": "eip155:137"}}, {"membership": {"chain": "eip155:31337"}}]}
    )
    assert said.text == "Any one of these:"
    assert [child.text for child in said.children] == [
        "Buy or rent this video on Polygon PoS.",
        "Hold a current membership of this creator on Local (Hardhat/Anvil).",
    ]
    assert all(child.link == "" for child in said.children)  # no contract to look up
