"""A local Solana JSON-RPC node for tests: an in-memory ledger of accounts (SPL Token and
Token-2022 accounts, mints, Metaplex metadata) served over HTTP in the wire format of a real
Agave node, so that production code uses the real ``solana.rpc.async_api.AsyncClient`` against
it unmodified.

Answers getTokenAccountsByOwner (``programId`` or ``mint`` filter; base64 or jsonParsed),
getMultipleAccounts, getAccountInfo, getHealth, getVersion and getSlot; any other method gets
-32601. Batch requests (a JSON array) are answered too, although solana-py does not send them
over HTTP. ``SolanaLedger`` has knobs for failure tests: ``delay_seconds``, ``fail_with``, and
it records every call received.
"""

import base64
import json
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount, TokenAccountState

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
METADATA_PROGRAM_ID = Pubkey.from_string("metaqbxxUerdq28cj1RbAWkYQm3ybzjb6a8bt518x1s")

TokenProgram = Literal["token", "token2022"]
TOKEN_PROGRAMS: dict[str, Pubkey] = {"token": TOKEN_PROGRAM_ID, "token2022": TOKEN_2022_PROGRAM_ID}
# The "program" name a node puts in jsonParsed data, per token program.
PARSED_PROGRAM_NAMES = {TOKEN_PROGRAM_ID: "spl-token", TOKEN_2022_PROGRAM_ID: "spl-token-2022"}

TOKEN_ACCOUNT_LEN = 165
MINT_LEN = 82
METADATA_LEN = 679  # mpl-token-metadata MAX_METADATA_LEN: accounts are allocated at this size
RENT_EPOCH_EXEMPT = 2**64 - 1  # what nodes report as rentEpoch for rent-exempt accounts
SOLANA_CORE = "2.1.21"
FEATURE_SET = 3271415109

# Real error objects as an Agave node sends them. solders parses errors strictly: -32005
# without its "data" member makes it panic, so keep the shapes whole.
NODE_UNHEALTHY: dict[str, Any] = {
    "code": -32005,
    "message": "Node is unhealthy",
    "data": {"numSlotsBehind": None},
}
INTERNAL_ERROR: dict[str, Any] = {"code": -32603, "message": "Internal error"}
METHOD_NOT_FOUND: dict[str, Any] = {"code": -32601, "message": "Method not found"}


def rent_exempt_lamports(size: int) -> int:
    """The rent-exempt minimum for ``size`` data bytes (3480 lamports/byte-year, 2 years, plus
    the 128-byte account overhead), e.g. 2039280 for a token account."""
    return (size + 128) * 3480 * 2


def metadata_pda(mint: Pubkey) -> Pubkey:
    """The Metaplex Metadata account address of ``mint``."""
    seeds = [b"metadata", bytes(METADATA_PROGRAM_ID), bytes(mint)]
    return Pubkey.find_program_address(seeds, METADATA_PROGRAM_ID)[0]


def master_edition_pda(mint: Pubkey) -> Pubkey:
    """The Metaplex Master Edition address of ``mint`` (an NFT's mint and freeze authority)."""
    seeds = [b"metadata", bytes(METADATA_PROGRAM_ID), bytes(mint), b"edition"]
    return Pubkey.find_program_address(seeds, METADATA_PROGRAM_ID)[0]


def token_account_address(
    owner: Pubkey,
    mint: Pubkey,
    token_program: TokenProgram = "token",  # noqa: S107 - a program's name, not a secret
) -> Pubkey:
    """The associated token account of ``owner`` for ``mint`` (where the ledger puts tokens)."""
    return get_associated_token_address(owner, mint, TOKEN_PROGRAMS[token_program])


def token_account_data(mint: Pubkey, owner: Pubkey, amount: int) -> bytes:
    """An initialized SPL token account, 165 bytes in the program's Pack layout (the same base
    layout for Token-2022)."""
    account = TokenAccount(
        mint=mint,
        owner=owner,
        amount=amount,
        delegate=None,
        state=TokenAccountState.Initialized,
        is_native=None,
        delegated_amount=0,
        close_authority=None,
    )
    return bytes(account)


def mint_data(*, supply: int, decimals: int, authority: Pubkey | None) -> bytes:
    """An initialized SPL mint, 82 bytes."""
    return bytes(Mint(authority, supply, decimals, True, authority))


def _borsh_string(value: str, pad_to: int = 0) -> bytes:
    # Metaplex "puffs" name/symbol/uri with NULs to their max length, inside the string.
    raw = value.encode().ljust(pad_to, b"\0")
    return struct.pack("<I", len(raw)) + raw


def _borsh_option(value: bytes | None) -> bytes:
    return b"\0" if value is None else b"\1" + value


def metadata_data(
    *,
    mint: Pubkey,
    update_authority: Pubkey,
    name: str,
    symbol: str,
    uri: str,
    collection: Pubkey | None,
    verified: bool = True,
    key: int = 4,
    truncated: bool = False,
    seller_fee_basis_points: int = 500,
    edition_nonce: int | None = 255,
) -> bytes:
    """A Metaplex Token Metadata account (MetadataV1 Borsh layout), zero-padded to 679 bytes.

    One creator (the update authority, verified, 100% share). ``truncated`` writes the older,
    shorter account that ends right after edition_nonce and is not padded, for decoders that
    must cope with missing trailing fields.
    """
    creator = bytes(update_authority) + struct.pack("<?B", True, 100)
    data = (
        struct.pack("<B", key)
        + bytes(update_authority)
        + bytes(mint)
        + _borsh_string(name, 32)
        + _borsh_string(symbol, 10)
        + _borsh_string(uri, 200)
        + struct.pack("<H", seller_fee_basis_points)
        + _borsh_option(struct.pack("<I", 1) + creator)  # creators: Some(vec![creator])
        + struct.pack("<??", True, True)  # primary_sale_happened, is_mutable
        + _borsh_option(None if edition_nonce is None else struct.pack("<B", edition_nonce))
    )
    if truncated:
        return data
    data += (
        _borsh_option(b"\0")  # token_standard: Some(NonFungible)
        + _borsh_option(
            None if collection is None else struct.pack("<?", verified) + bytes(collection)
        )
        + _borsh_option(None)  # uses
        + _borsh_option(None)  # collection_details
        + _borsh_option(None)  # programmable_config
    )
    return data.ljust(METADATA_LEN, b"\0")


class SolanaLedger:
    """Accounts by address, plus the knobs a test sets on the node serving them.

    ``delay_seconds``: wait this long before answering each HTTP request (client timeouts).
    ``fail_with``: a JSON-RPC error object (e.g. ``NODE_UNHEALTHY``) to answer every call
    with, or an int HTTP status (e.g. 500, 429) to answer every HTTP request with.
    ``calls``: the method names received, in order; ``requests``: the whole JSON-RPC calls.
    """

    def __init__(self, slot: int = 350_000_000) -> None:
        self.accounts: dict[Pubkey, Account] = {}
        self.slot = slot
        self.delay_seconds: float = 0
        self.fail_with: dict[str, Any] | int | None = None
        self.calls: list[str] = []
        self.requests: list[dict[str, Any]] = []
        # Server threads read while the test thread writes.
        self.lock = threading.RLock()

    def set_account(
        self,
        pubkey: Pubkey,
        data: bytes,
        *,
        owner: Pubkey,
        lamports: int | None = None,
        executable: bool = False,
    ) -> None:
        """Store (or replace) a raw account; lamports default to its rent-exempt minimum."""
        if lamports is None:
            lamports = rent_exempt_lamports(len(data))
        with self.lock:
            self.accounts[pubkey] = Account(lamports, data, owner, executable, RENT_EPOCH_EXEMPT)

    def remove_account(self, pubkey: Pubkey) -> None:
        with self.lock:
            self.accounts.pop(pubkey, None)

    def add_mint(
        self,
        *,
        supply: int = 1,
        decimals: int = 0,
        token_program: TokenProgram = "token",  # noqa: S107 - a program's name, not a secret
    ) -> Pubkey:
        """A new mint with a random address; its authority is its master edition, as for NFTs."""
        mint = Keypair().pubkey()
        data = mint_data(supply=supply, decimals=decimals, authority=master_edition_pda(mint))
        self.set_account(mint, data, owner=TOKEN_PROGRAMS[token_program])
        return mint

    def add_token_account(
        self,
        owner: Pubkey,
        mint: Pubkey,
        amount: int,
        *,
        token_program: TokenProgram = "token",  # noqa: S107 - a program's name, not a secret
    ) -> Pubkey:
        """``owner``'s associated token account for ``mint`` holding ``amount``."""
        address = token_account_address(owner, mint, token_program)
        data = token_account_data(mint, owner, amount)
        self.set_account(address, data, owner=TOKEN_PROGRAMS[token_program])
        return address

    def add_metadata(
        self,
        mint: Pubkey,
        *,
        collection: Pubkey | None,
        verified: bool = True,
        owner: Pubkey = METADATA_PROGRAM_ID,
        key: int = 4,
        truncated: bool = False,
        name: str = "StreamGate Pass",
        symbol: str = "SGP",
        uri: str = "https://example.com/pass.json",
        update_authority: Pubkey | None = None,
    ) -> Pubkey:
        """The Metadata account of ``mint`` at its PDA, owned by ``owner``; returns the PDA."""
        data = metadata_data(
            mint=mint,
            update_authority=update_authority or Keypair().pubkey(),
            name=name,
            symbol=symbol,
            uri=uri,
            collection=collection,
            verified=verified,
            key=key,
            truncated=truncated,
        )
        address = metadata_pda(mint)
        self.set_account(address, data, owner=owner)
        return address

    def add_nft(
        self,
        owner: Pubkey,
        *,
        collection: Pubkey | None,
        verified: bool = True,
        token_program: TokenProgram = "token",  # noqa: S107 - a program's name, not a secret
        amount: int = 1,
        decimals: int = 0,
        metadata_owner: Pubkey | None = None,
        key: int = 4,
        truncated: bool = False,
        with_metadata: bool = True,
    ) -> Pubkey:
        """A new mint, ``owner``'s token account holding ``amount`` of it and (unless
        ``with_metadata`` is false) its Metadata account; returns the mint."""
        mint = self.add_mint(supply=amount, decimals=decimals, token_program=token_program)
        self.add_token_account(owner, mint, amount, token_program=token_program)
        if with_metadata:
            self.add_metadata(
                mint,
                collection=collection,
                verified=verified,
                owner=metadata_owner or METADATA_PROGRAM_ID,
                key=key,
                truncated=truncated,
            )
        return mint

    def transfer(self, mint: Pubkey, sender: Pubkey, recipient: Pubkey) -> None:
        """Move ``sender``'s whole balance of ``mint`` to ``recipient``'s associated account;
        the sender's account stays, empty, as on chain."""
        with self.lock:
            program_id = self.accounts[mint].owner
            token_program = "token" if program_id == TOKEN_PROGRAM_ID else "token2022"
            source = token_account_address(sender, mint, token_program)
            amount = TokenAccount.from_bytes(self.accounts[source].data[:TOKEN_ACCOUNT_LEN]).amount
            self.set_account(source, token_account_data(mint, sender, 0), owner=program_id)
            destination = token_account_address(recipient, mint, token_program)
            held = self.accounts.get(destination)
            if held is not None:
                amount += TokenAccount.from_bytes(held.data[:TOKEN_ACCOUNT_LEN]).amount
            self.set_account(
                destination, token_account_data(mint, recipient, amount), owner=program_id
            )

    def token_accounts(
        self, owner: Pubkey, program_id: Pubkey, mint: Pubkey | None = None
    ) -> list[tuple[Pubkey, Account]]:
        """The token accounts of ``owner`` under ``program_id`` (optionally of one mint), as a
        node's getTokenAccountsByOwner selects them."""
        with self.lock:
            return [
                (address, account)
                for address, account in self.accounts.items()
                if account.owner == program_id
                and _is_token_account(account)
                and account.data[32:64] == bytes(owner)
                and (mint is None or account.data[:32] == bytes(mint))
            ]


def _is_token_account(account: Account) -> bool:
    # Token-2022 accounts with extensions are longer and say so in their type byte (2).
    data = account.data
    return len(data) == TOKEN_ACCOUNT_LEN or (len(data) > TOKEN_ACCOUNT_LEN and data[165] == 2)


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message}


def _invalid_params(message: str) -> _RpcError:
    return _RpcError(-32602, f"Invalid param: {message}")


def _pubkey(value: Any) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except (TypeError, ValueError) as error:
        raise _invalid_params("Invalid") from error


class _Node:
    """Answers JSON-RPC calls from a ledger, shaped as an Agave node shapes them."""

    def __init__(self, ledger: SolanaLedger) -> None:
        self.ledger = ledger

    def answer(self, call: Any) -> dict[str, Any]:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            return _envelope(None, error={"code": -32600, "message": "Invalid request"})
        handler = getattr(self, "rpc_" + call["method"], None)
        if handler is None:
            return _envelope(call.get("id"), error=METHOD_NOT_FOUND)
        try:
            with self.ledger.lock:
                result = handler(*call.get("params") or [])
        except _RpcError as error:
            return _envelope(call.get("id"), error=error.error)
        except TypeError:  # wrong number of params
            return _envelope(call.get("id"), error=_invalid_params("wrong arguments").error)
        return _envelope(call.get("id"), result=result)

    def _context(self, value: Any) -> dict[str, Any]:
        return {"context": {"apiVersion": SOLANA_CORE, "slot": self.ledger.slot}, "value": value}

    def rpc_getHealth(self) -> str:  # noqa: N802 - JSON-RPC method names
        return "ok"

    def rpc_getVersion(self) -> dict[str, Any]:  # noqa: N802
        return {"feature-set": FEATURE_SET, "solana-core": SOLANA_CORE}

    def rpc_getSlot(self, config: dict | None = None) -> int:  # noqa: N802
        return self.ledger.slot

    def rpc_getAccountInfo(self, pubkey: str, config: dict | None = None) -> dict:  # noqa: N802
        config = config or {}
        account = self.ledger.accounts.get(_pubkey(pubkey))
        return self._context(None if account is None else self._ui_account(account, config))

    def rpc_getMultipleAccounts(self, pubkeys: list, config: dict | None = None) -> dict:  # noqa: N802
        config = config or {}
        if len(pubkeys) > 100:
            raise _invalid_params("Too many inputs provided; max 100")
        accounts = [self.ledger.accounts.get(_pubkey(key)) for key in pubkeys]
        return self._context(
            [None if account is None else self._ui_account(account, config) for account in accounts]
        )

    def rpc_getTokenAccountsByOwner(  # noqa: N802
        self, owner: str, token_filter: dict, config: dict | None = None
    ) -> dict:
        config = config or {}
        owner_key, mint = _pubkey(owner), None
        if "programId" in token_filter:
            program_id = _pubkey(token_filter["programId"])
            if program_id not in PARSED_PROGRAM_NAMES:
                raise _invalid_params("unrecognized Token program id")
        elif "mint" in token_filter:
            mint = _pubkey(token_filter["mint"])
            mint_account = self.ledger.accounts.get(mint)
            if mint_account is None or mint_account.owner not in PARSED_PROGRAM_NAMES:
                raise _invalid_params("could not find mint")
            program_id = mint_account.owner
        else:
            raise _invalid_params("unrecognized filter")
        return self._context(
            [
                {"pubkey": str(address), "account": self._ui_account(account, config)}
                for address, account in self.ledger.token_accounts(owner_key, program_id, mint)
            ]
        )

    def _ui_account(self, account: Account, config: dict) -> dict[str, Any]:
        encoding = config.get("encoding") or "base64"
        if encoding not in ("base64", "jsonParsed"):
            raise _invalid_params(f"encoding {encoding} is not supported by this test node")
        data: Any = None
        if encoding == "jsonParsed":
            data = self._parsed_token_account(account)
        if data is None:  # not parseable: a node falls back to base64
            raw = account.data
            if config.get("dataSlice"):
                offset, length = config["dataSlice"]["offset"], config["dataSlice"]["length"]
                raw = raw[offset : offset + length]
            data = [base64.b64encode(raw).decode(), "base64"]
        return {
            "data": data,
            "executable": account.executable,
            "lamports": account.lamports,
            "owner": str(account.owner),
            "rentEpoch": account.rent_epoch,
            "space": len(account.data),
        }

    def _parsed_token_account(self, account: Account) -> dict[str, Any] | None:
        program = PARSED_PROGRAM_NAMES.get(account.owner)
        if program is None or not _is_token_account(account):
            return None
        token = TokenAccount.from_bytes(account.data[:TOKEN_ACCOUNT_LEN])
        mint_account = self.ledger.accounts.get(token.mint)
        if mint_account is None:  # a node needs the mint's decimals to parse
            return None
        decimals = Mint.from_bytes(mint_account.data[:MINT_LEN]).decimals
        info: dict[str, Any] = {
            "isNative": token.is_native is not None,
            "mint": str(token.mint),
            "owner": str(token.owner),
            "state": {0: "uninitialized", 1: "initialized", 2: "frozen"}[int(token.state)],
            "tokenAmount": ui_token_amount(token.amount, decimals),
        }
        if token.delegate is not None:
            info["delegate"] = str(token.delegate)
            info["delegatedAmount"] = ui_token_amount(token.delegated_amount, decimals)
        if token.close_authority is not None:
            info["closeAuthority"] = str(token.close_authority)
        return {
            "program": program,
            "parsed": {"info": info, "type": "account"},
            "space": len(account.data),
        }


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    """The ``tokenAmount`` object of jsonParsed token accounts."""
    text = format(Decimal(amount).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": amount / 10**decimals,
        "uiAmountString": text,
    }


def _envelope(call_id: Any, *, result: Any = None, error: dict | None = None) -> dict[str, Any]:
    if error is not None:
        return {"jsonrpc": "2.0", "error": error, "id": call_id}
    return {"jsonrpc": "2.0", "result": result, "id": call_id}


@contextmanager
def solana_rpc_server(ledger: SolanaLedger) -> Iterator[str]:
    """Serve ``ledger`` over HTTP on a loopback port; yields the RPC URL."""
    node = _Node(ledger)
    closing = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout) before a delayed answer

        def do_GET(self):
            # Nodes also answer GET /health with a bare "ok".
            if self.path != "/health":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                self._reply(200, _envelope(None, error={"code": -32700, "message": "Parse error"}))
                return
            calls = body if isinstance(body, list) else [body]
            for call in calls:
                ledger.requests.append(call)
                ledger.calls.append(call.get("method") if isinstance(call, dict) else None)
            if ledger.delay_seconds:
                closing.wait(ledger.delay_seconds)  # cut short when the server stops
            failure = ledger.fail_with
            if isinstance(failure, int):
                error = {"code": failure, "message": f"HTTP {failure}"}
                self._reply(failure, _envelope(None, error=error))
                return
            if failure is not None:
                answers = [_envelope(_call_id(call), error=failure) for call in calls]
            else:
                answers = [node.answer(call) for call in calls]
            self._reply(200, answers if isinstance(body, list) else answers[0])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for it, once per test.
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        closing.set()
        httpd.shutdown()
        httpd.server_close()


def _call_id(call: Any) -> Any:
    return call.get("id") if isinstance(call, dict) else None
