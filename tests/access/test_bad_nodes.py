"""A node that answers, but with nothing usable: undecodable call data must stay an unknown
answer (never a "no" that a ``not`` rule would turn into a yes), unless no contract exists."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.access.gates import Wallet, gate_validate
from apps.access.playback import gate_evaluate

CHAIN = "eip155:31337"
CONTRACT = "0x" + "ab" * 20
VIEWER = Wallet("eip155", "0x" + "cd" * 20)


def empty_data_node(code: str):
    """A JSON-RPC node whose eth_call returns "0x" and whose eth_getCode returns ``code``."""
    answers = {"eth_chainId": hex(31337), "eth_call": "0x", "eth_getCode": code}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps(
                {"jsonrpc": "2.0", "id": request["id"], "result": answers[request["method"]]}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def node(request, settings):
    server = empty_data_node(request.param)
    settings.CHAIN_RPC_URLS = {CHAIN: f"http://127.0.0.1:{server.server_address[1]}"}
    yield
    server.shutdown()


def rules(token_id=None):
    held = {"erc721": {"chain": CHAIN, "contract": CONTRACT, "token_id": token_id}}
    return gate_validate(held), gate_validate({"not": held})


@pytest.mark.parametrize("node", ["0x6080604052"], indirect=True)
@pytest.mark.parametrize("token_id", [None, "1"])
def test_undecodable_answers_from_a_contract_are_unknown(node, token_id):
    for gate in rules(token_id):
        evaluation = gate_evaluate(gate=gate, wallets=[VIEWER])
        assert evaluation.result is None
        assert evaluation.unavailable == ["eip155:31337 did not answer (OwnershipUnavailable)"]


@pytest.mark.parametrize("node", ["0x"], indirect=True)
def test_no_contract_at_the_address_means_nobody_holds_it(node):
    holds, lacks = rules()
    assert gate_evaluate(gate=holds, wallets=[VIEWER]).result is False
    assert gate_evaluate(gate=lacks, wallets=[VIEWER]).result is True
