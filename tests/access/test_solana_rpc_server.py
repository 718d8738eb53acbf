"""The local Solana RPC node (tests/support/solana_rpc.py) against the real solana-py
AsyncClient: its answers must pass solders' strict response parsing, and its failure knobs
must surface as the client's real errors. No database needed."""

import asyncio
import json
import urllib.request
from typing import Any

import httpx2
import pytest
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solana.rpc.models import TokenAccountOpts
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rpc.responses import MethodNotFoundMessage, NodeUnhealthyMessage
from solders.token.state import TokenAccount

from tests.support.solana_rpc import (
    METADATA_LEN,
    METADATA_PROGRAM_ID,
    NODE_UNHEALTHY,
    RENT_EPOCH_EXEMPT,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    SolanaLedger,
    metadata_pda,
    solana_rpc_server,
    token_account_address,
)


def run(url: str, call, **client_options):
    """Run ``call(client)`` with a fresh AsyncClient on ``url``."""

    async def main():
        async with AsyncClient(url, **client_options) as client:
            return await call(client)

    return asyncio.run(main())


def post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def by_program(owner: Pubkey, program_id: Pubkey):
    return lambda client: client.get_token_accounts_by_owner_json_parsed(
        owner, TokenAccountOpts(program_id=program_id)
    )


def test_token_accounts_by_owner_are_separated_by_program():
    ledger, owner = SolanaLedger(), Keypair().pubkey()
    classic = ledger.add_nft(owner, collection=Keypair().pubkey())
    token2022 = ledger.add_nft(
        owner, collection=None, token_program="token2022", amount=1500, decimals=3
    )
    ledger.add_nft(Keypair().pubkey(), collection=None)  # someone else's

    with solana_rpc_server(ledger) as url:
        classic_resp = run(url, by_program(owner, TOKEN_PROGRAM_ID))
        token2022_resp = run(url, by_program(owner, TOKEN_2022_PROGRAM_ID))

    assert classic_resp.context.slot == ledger.slot
    [keyed] = classic_resp.value
    assert keyed.pubkey == token_account_address(owner, classic)
    assert keyed.account.owner == TOKEN_PROGRAM_ID
    assert keyed.account.lamports == 2039280
    assert keyed.account.rent_epoch == RENT_EPOCH_EXEMPT
    assert keyed.account.data.program == "spl-token"
    assert keyed.account.data.space == 165
    info = keyed.account.data.parsed["info"]
    assert keyed.account.data.parsed["type"] == "account"
    assert info["mint"] == str(classic)
    assert info["owner"] == str(owner)
    assert info["state"] == "initialized"
    assert info["tokenAmount"] == {
        "amount": "1",
        "decimals": 0,
        "uiAmount": 1.0,
        "uiAmountString": "1",
    }

    [keyed] = token2022_resp.value
    assert keyed.pubkey == token_account_address(owner, token2022, "token2022")
    assert keyed.account.owner == TOKEN_2022_PROGRAM_ID
    assert keyed.account.data.program == "spl-token-2022"
    info = keyed.account.data.parsed["info"]
    assert info["mint"] == str(token2022)
    assert info["tokenAmount"] == {
        "amount": "1500",
        "decimals": 3,
        "uiAmount": 1.5,
        "uiAmountString": "1.5",
    }


def test_token_accounts_by_owner_wire_shape_is_a_nodes():
    ledger, owner = SolanaLedger(slot=7), Keypair().pubkey()
    mint = ledger.add_nft(owner, collection=None)
    call = {
        "jsonrpc": "2.0",
        "id": 41,
        "method": "getTokenAccountsByOwner",
        "params": [str(owner), {"programId": str(TOKEN_PROGRAM_ID)}, {"encoding": "jsonParsed"}],
    }

    with solana_rpc_server(ledger) as url:
        answer = post(url, call)

    parsed_data = {
        "program": "spl-token",
        "parsed": {
            "info": {
                "isNative": False,
                "mint": str(mint),
                "owner": str(owner),
                "state": "initialized",
                "tokenAmount": {
                    "amount": "1",
                    "decimals": 0,
                    "uiAmount": 1.0,
                    "uiAmountString": "1",
                },
            },
            "type": "account",
        },
        "space": 165,
    }
    assert answer == {
        "jsonrpc": "2.0",
        "id": 41,
        "result": {
            "context": {"apiVersion": "2.1.21", "slot": 7},
            "value": [
                {
                    "pubkey": str(token_account_address(owner, mint)),
                    "account": {
                        "data": parsed_data,
                        "executable": False,
                        "lamports": 2039280,
                        "owner": str(TOKEN_PROGRAM_ID),
                        "rentEpoch": RENT_EPOCH_EXEMPT,
                        "space": 165,
                    },
                }
            ],
        },
    }


def test_token_accounts_by_owner_with_mint_filter():
    ledger, owner = SolanaLedger(), Keypair().pubkey()
    wanted = ledger.add_nft(owner, collection=None, token_program="token2022")
    ledger.add_nft(owner, collection=None, token_program="token2022")

    with solana_rpc_server(ledger) as url:
        resp = run(
            url,
            lambda client: client.get_token_accounts_by_owner_json_parsed(
                owner, TokenAccountOpts(mint=wanted)
            ),
        )

    [keyed] = resp.value
    assert keyed.account.data.parsed["info"]["mint"] == str(wanted)
    assert keyed.account.owner == TOKEN_2022_PROGRAM_ID


def test_unknown_token_program_is_invalid_params():
    ledger = SolanaLedger()
    with solana_rpc_server(ledger) as url, pytest.raises(RPCException) as raised:
        run(url, by_program(Keypair().pubkey(), Keypair().pubkey()))
    assert raised.value.args[0].message == "Invalid param: unrecognized Token program id"


def test_multiple_accounts_return_raw_bytes_owner_and_none_for_missing():
    ledger, owner, collection = SolanaLedger(), Keypair().pubkey(), Keypair().pubkey()
    mint = ledger.add_nft(owner, collection=collection)
    metadata, token_account = metadata_pda(mint), token_account_address(owner, mint)
    missing = Keypair().pubkey()

    with solana_rpc_server(ledger) as url:
        resp = run(
            url, lambda client: client.get_multiple_accounts([metadata, token_account, missing])
        )

    stored_metadata, stored_token = resp.value[0], resp.value[1]
    assert stored_metadata.data == ledger.accounts[metadata].data
    assert stored_metadata.owner == METADATA_PROGRAM_ID
    assert len(stored_metadata.data) == METADATA_LEN
    assert stored_token.owner == TOKEN_PROGRAM_ID
    token = TokenAccount.from_bytes(stored_token.data)
    assert (token.mint, token.owner, token.amount) == (mint, owner, 1)
    assert resp.value[2] is None


def test_account_info_returns_account_or_none():
    ledger, owner = SolanaLedger(), Keypair().pubkey()
    mint = ledger.add_nft(owner, collection=None, token_program="token2022")

    with solana_rpc_server(ledger) as url:
        found = run(url, lambda client: client.get_account_info(metadata_pda(mint)))
        token = run(
            url,
            lambda client: client.get_account_info(token_account_address(owner, mint, "token2022")),
        )
        missing = run(url, lambda client: client.get_account_info(Keypair().pubkey()))

    assert found.value.owner == METADATA_PROGRAM_ID
    assert found.value.data == ledger.accounts[metadata_pda(mint)].data
    assert token.value.owner == TOKEN_2022_PROGRAM_ID
    assert missing.value is None


def test_metadata_is_metaplex_borsh_layout():
    ledger, owner, collection = SolanaLedger(), Keypair().pubkey(), Keypair().pubkey()
    mint = ledger.add_nft(owner, collection=collection, verified=False)
    data = ledger.accounts[metadata_pda(mint)].data

    # Offsets worked out by hand from the MetadataV1 layout, independently of the encoder.
    assert data[0] == 4
    assert data[33:65] == bytes(mint)
    assert int.from_bytes(data[65:69], "little") == 32  # name, NUL-padded to 32
    assert data[69:101].rstrip(b"\0") == b"StreamGate Pass"
    assert int.from_bytes(data[101:105], "little") == 10  # symbol
    assert int.from_bytes(data[115:119], "little") == 200  # uri
    assert data[321:326] == b"\1\1\0\0\0"  # creators: Some, one creator
    assert data[326:358] == data[1:33]  # the update authority
    assert data[358:360] == b"\1\x64"  # verified, 100% share
    assert data[362:364] == b"\1\xff"  # edition_nonce: Some(255)
    assert data[364:366] == b"\1\0"  # token_standard: Some(NonFungible)
    assert data[366:368] == b"\1\0"  # collection: Some, unverified
    assert data[368:400] == bytes(collection)
    assert data[400:] == bytes(METADATA_LEN - 400)  # uses etc. None, then zero padding


def test_metadata_knobs():
    ledger, owner, other_program = SolanaLedger(), Keypair().pubkey(), Keypair().pubkey()
    truncated = ledger.add_nft(owner, collection=Keypair().pubkey(), truncated=True)
    spoofed = ledger.add_nft(owner, collection=None, metadata_owner=other_program, key=0)
    bare = ledger.add_nft(owner, collection=None, with_metadata=False)

    assert len(ledger.accounts[metadata_pda(truncated)].data) == 364
    assert ledger.accounts[metadata_pda(spoofed)].owner == other_program
    spoofed_data = ledger.accounts[metadata_pda(spoofed)].data
    assert spoofed_data[0] == 0
    assert spoofed_data[366:] == bytes(METADATA_LEN - 366)  # collection: None, then zeros
    assert metadata_pda(bare) not in ledger.accounts


def test_transfer_moves_the_balance():
    ledger, seller, buyer = SolanaLedger(), Keypair().pubkey(), Keypair().pubkey()
    mint = ledger.add_nft(seller, collection=None)
    ledger.transfer(mint, seller, buyer)

    with solana_rpc_server(ledger) as url:
        sold = run(url, by_program(seller, TOKEN_PROGRAM_ID))
        bought = run(url, by_program(buyer, TOKEN_PROGRAM_ID))

    assert sold.value[0].account.data.parsed["info"]["tokenAmount"]["amount"] == "0"
    assert bought.value[0].account.data.parsed["info"]["tokenAmount"]["amount"] == "1"


def test_health_version_slot():
    ledger = SolanaLedger(slot=1234)

    async def calls(client: AsyncClient):
        return await client.is_connected(), await client.get_version(), await client.get_slot()

    with solana_rpc_server(ledger) as url:
        connected, version, slot = run(url, calls)

    assert connected is True
    assert version.value.solana_core == "2.1.21"
    assert slot.value == 1234
    assert ledger.calls == ["getHealth", "getVersion", "getSlot"]


def test_unknown_method_is_method_not_found():
    ledger = SolanaLedger()
    with solana_rpc_server(ledger) as url, pytest.raises(RPCException) as raised:
        run(url, lambda client: client.get_block_height())
    assert isinstance(raised.value.args[0], MethodNotFoundMessage)


def test_batch_requests_are_answered_in_order():
    ledger = SolanaLedger(slot=9)
    with solana_rpc_server(ledger) as url:
        answers = post(
            url,
            [
                {"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
                {"jsonrpc": "2.0", "id": 2, "method": "getNothing"},
            ],
        )
    assert answers == [
        {"jsonrpc": "2.0", "id": 1, "result": 9},
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "Method not found"}},
    ]


def test_delay_beyond_the_client_timeout_raises():
    ledger = SolanaLedger()
    ledger.delay_seconds = 5
    with solana_rpc_server(ledger) as url, pytest.raises(SolanaRpcException) as raised:
        run(url, lambda client: client.get_slot(), timeout=0.2)
    assert isinstance(raised.value.__cause__, httpx2.TimeoutException)
    # solana-py retries a transport error (a timeout is one) once by default.
    assert ledger.calls == ["getSlot", "getSlot"]


def test_fail_with_rpc_error_raises_rpc_exception():
    ledger = SolanaLedger()
    ledger.fail_with = NODE_UNHEALTHY
    with solana_rpc_server(ledger) as url, pytest.raises(RPCException) as raised:
        run(url, lambda client: client.get_multiple_accounts([Keypair().pubkey()]))
    assert isinstance(raised.value.args[0], NodeUnhealthyMessage)
    assert ledger.calls == ["getMultipleAccounts"]


def test_fail_with_http_status_raises_solana_rpc_exception():
    ledger = SolanaLedger()
    ledger.fail_with = 500
    with solana_rpc_server(ledger) as url, pytest.raises(SolanaRpcException) as raised:
        run(url, lambda client: client.get_slot())
    assert isinstance(raised.value.__cause__, httpx2.HTTPStatusError)
    assert raised.value.__cause__.response.status_code == 500


def test_error_code_solders_does_not_know_is_returned_not_raised():
    """A pitfall pinned: solders parses an unknown error code to a bare int, which solana-py
    returns as if it were the response. Callers must check for it."""
    ledger = SolanaLedger()
    ledger.fail_with = {"code": -32000, "message": "Server error"}
    with solana_rpc_server(ledger) as url:
        resp = run(url, lambda client: client.get_slot())
    assert resp == -32000


def test_base64_token_accounts_decode_with_solders():
    ledger, owner = SolanaLedger(), Keypair().pubkey()
    mint = ledger.add_nft(owner, collection=None, amount=3)
    with solana_rpc_server(ledger) as url:
        resp = run(
            url,
            lambda client: client.get_token_accounts_by_owner(
                owner, TokenAccountOpts(program_id=TOKEN_PROGRAM_ID)
            ),
        )
    [keyed] = resp.value
    token = TokenAccount.from_bytes(keyed.account.data)
    assert (token.mint, token.owner, token.amount) == (mint, owner, 3)
