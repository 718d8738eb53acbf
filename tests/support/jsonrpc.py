"""Local JSON-RPC peers for chain tests: a Hardhat node, and a proxy that refuses wide
eth_getLogs ranges the way hosted RPC providers do (-32005)."""

import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.processes import ROOT, free_port, spawned, wait_for_port

HARDHAT_MNEMONIC = "test test test test test test test test test test test junk"
# The first of Hardhat's funded default accounts (hardhat_key derives any of the twenty).
HARDHAT_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
]


def hardhat_key(index: int) -> str:
    """The private key of Hardhat's default account ``index`` (funded with 10,000 ETH for
    0-19), derived from its default mnemonic."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(HARDHAT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account.key.to_0x_hex()


def send_signed(web3, key: str, tx: dict, *, wait: bool = True):
    """Send ``tx`` (to, data, value) as a wallet does: nonce, gas and EIP-1559 fees filled in,
    signed with ``key``, broadcast with eth_sendRawTransaction; the receipt (or the hash)."""
    from eth_account import Account

    account = Account.from_key(key)
    full = {
        **tx,
        "from": account.address,
        "chainId": web3.eth.chain_id,
        "nonce": web3.eth.get_transaction_count(account.address, "pending"),
    }
    full["gas"] = web3.eth.estimate_gas(full)
    base_fee = web3.eth.get_block("latest")["baseFeePerGas"]
    full.update(maxPriorityFeePerGas=10**9, maxFeePerGas=2 * base_fee + 10**9)
    tx_hash = web3.eth.send_raw_transaction(account.sign_transaction(full).raw_transaction)
    return web3.eth.wait_for_transaction_receipt(tx_hash) if wait else tx_hash


def rpc(url: str, method: str, params: list | None = None):
    request = urllib.request.Request(
        url,
        data=json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if "error" in body:
        raise RuntimeError(body["error"])
    return body["result"]


@contextmanager
def hardhat_node(log: Path) -> Iterator[str]:
    """``npx hardhat node`` on a free port (offline, chain id 31337); yields its URL."""
    port = free_port()
    args = [
        "npx",
        "--no-install",
        "hardhat",
        "--config",
        "hardhat.config.cjs",
        "node",
        "--hostname",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
    with spawned(args, env=env, log=log, cwd=ROOT / "contracts") as process:
        wait_for_port(port, timeout=60, process=process, log=log)
        yield f"http://127.0.0.1:{port}"


class RefusingProxy:
    """Forwards JSON-RPC to ``upstream``; answers eth_getLogs spanning more than ``max_span``
    blocks with the -32005 error hosted providers use."""

    def __init__(self, upstream: str, max_span: int) -> None:
        self.upstream, self.max_span = upstream, max_span
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                call = json.loads(raw)
                if call.get("method") == "eth_getLogs" and proxy._too_wide(call["params"][0]):
                    proxy.refused += 1
                    body = json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": call.get("id"),
                            "error": {
                                "code": -32005,
                                "message": "query returned more than 10000 results",
                            },
                        }
                    )
                    data = body.encode()
                else:
                    request = urllib.request.Request(
                        proxy.upstream, data=raw, headers={"Content-Type": "application/json"}
                    )
                    with urllib.request.urlopen(request, timeout=30) as response:
                        data = response.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def _too_wide(self, query: dict) -> bool:
        start, end = int(query["fromBlock"], 16), int(query["toBlock"], 16)
        return end - start + 1 > self.max_span

    def __enter__(self) -> "RefusingProxy":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()


__all__ = [
    "HARDHAT_KEYS",
    "RefusingProxy",
    "hardhat_key",
    "hardhat_node",
    "rpc",
    "send_signed",
    "subprocess",
]


class InterceptingProxy:
    """Forwards JSON-RPC to ``upstream``, letting a test act on each call: ``before(call)``
    may return a JSON-RPC error dict to answer instead; ``after(call)`` runs once the upstream
    answered and before the answer goes back (to change the chain under the client)."""

    def __init__(self, upstream: str, *, before=None, after=None) -> None:
        self.upstream = upstream
        self.before, self.after = before, after
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                call = json.loads(raw)
                error = proxy.before(call) if proxy.before else None
                if error is not None:
                    data = json.dumps(
                        {"jsonrpc": "2.0", "id": call.get("id"), "error": error}
                    ).encode()
                else:
                    request = urllib.request.Request(
                        proxy.upstream, data=raw, headers={"Content-Type": "application/json"}
                    )
                    with urllib.request.urlopen(request, timeout=30) as response:
                        data = response.read()
                    if proxy.after:
                        proxy.after(call)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self) -> "InterceptingProxy":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
