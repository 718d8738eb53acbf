"""A JSON-RPC provider in front of a real node that can fail or lag on demand, for the failover
tests: ``mode`` "ok", "error" (HTTP 500), "reset" (the connection closed unanswered) or "timeout"
(held until the client gives up); ``lag`` blocks behind, it serves the node's state at head-lag
as a lagging provider does (block tags pinned to its head, later blocks unknown, logs only up to
its head) and records any eth_getLogs asked beyond its head (``beyond_head``)."""

import json
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TAGS = ("latest", "pending", "safe", "finalized")
# Calls whose last parameter is a block tag or number.
AT_BLOCK = (
    "eth_call",
    "eth_getBalance",
    "eth_getCode",
    "eth_getTransactionCount",
    "eth_getStorageAt",
)


class FaultyProvider:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode, self.lag = "ok", 0
        self.calls: list[str] = []  # methods answered normally (not failed)
        self.beyond_head: list[dict] = []
        self.released = threading.Event()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if provider.mode == "error":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if provider.mode in ("reset", "timeout"):
                    if provider.mode == "timeout":
                        provider.released.wait(30)
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                call = json.loads(raw)
                provider.calls.append(call["method"])
                result = provider.answer(call)
                data = json.dumps(result).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def forward(self, call: dict) -> dict:
        request = urllib.request.Request(
            self.upstream,
            data=json.dumps(call).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def head(self) -> int:
        real = self.forward({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []})
        return max(0, int(real["result"], 16) - self.lag)

    def answer(self, call: dict) -> dict:
        if not self.lag:
            return self.forward(call)
        method, params, head = call["method"], list(call.get("params") or []), self.head()
        reply = {"jsonrpc": "2.0", "id": call.get("id")}
        if method == "eth_blockNumber":
            return {**reply, "result": hex(head)}
        if method == "eth_getBlockByNumber":
            if params[0] in TAGS:
                params[0] = hex(head)
            elif int(params[0], 16) > head:
                return {**reply, "result": None}
        elif method == "eth_getLogs":
            query = dict(params[0])
            for key in ("fromBlock", "toBlock"):
                if query.get(key, "latest") in TAGS:
                    query[key] = hex(head)
            if int(query["toBlock"], 16) > head:
                self.beyond_head.append(params[0])
                query["toBlock"] = hex(head)  # a lagging node gives what it has, silently
            if int(query["fromBlock"], 16) > head:
                return {**reply, "result": []}
            params[0] = query
        elif method in AT_BLOCK and params and params[-1] in TAGS:
            params[-1] = hex(head)
        return self.forward({**call, "params": params})

    def __enter__(self) -> "FaultyProvider":
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.httpd.shutdown()
