"""streamgate.http_protocol.HttpProtocol, uvicorn's httptools protocol that hands request
bodies over without copying them, against uvicorn's own class: the same raw HTTP exchanges go
to a real uvicorn process with each (serving tests/support/echo_asgi.py), and the application
must be handed the same bytes, in the same order, with the same ends (a body's last message,
a client gone mid-body), through every framing HTTP/1.1 has: Content-Length, chunked, empty,
Expect: 100-continue, several requests pipelined on one connection, and an upgrade to a
websocket. And every command line that starts the web server uses it."""

import hashlib
import json
import os
import re
import socket
import subprocess
import time

import pytest
import yaml
from websockets.sync.client import connect

from tests.support.processes import BIN, ROOT, free_port, stop, wait_for_port

OURS = "streamgate.http_protocol:HttpProtocol"
PROTOCOLS = {"ours": OURS, "uvicorn": "httptools"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """A uvicorn process per protocol class, serving the echo app; yields name -> (port, log)."""
    folder = tmp_path_factory.mktemp("http-protocol")
    started = {}
    try:
        for name, protocol in PROTOCOLS.items():
            port, log = free_port(), folder / f"{name}.jsonl"
            out = folder / f"{name}.log"
            env = {**os.environ, "ECHO_LOG": str(log), "PYTHONPATH": str(ROOT)}
            with out.open("ab") as handle:
                process = subprocess.Popen(
                    [
                        str(BIN / "uvicorn"),
                        "tests.support.echo_asgi:app",
                        "--http",
                        protocol,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--lifespan",
                        "off",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started[name] = (process, port, log)
            wait_for_port(port, timeout=30, process=process, log=out)
        yield {name: (port, log) for name, (_, port, log) in started.items()}
    finally:
        for process, _, _ in started.values():
            stop(process)


def read_responses(raw: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """``count`` final responses (status, body) read off the socket; 100 Continue skipped."""
    buffer, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            data = raw.recv(65536)
            assert data, f"the server closed the connection after {len(answers)} responses"
            buffer += data
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        if status == 100:
            continue
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
        while len(buffer) < length:
            buffer += raw.recv(65536)
        answers.append((status, buffer[:length]))
        buffer = buffer[length:]
    return answers


def exchange(port: int, payload: bytes, count: int = 1) -> list[tuple[int, dict]]:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        raw.sendall(payload)
        return [(status, json.loads(body)) for status, body in read_responses(raw, count)]


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    if "Transfer-Encoding" not in named:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in named.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def described(answers: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """What the application was handed, less how the bytes were cut into messages (which
    follows the socket's reads, not the protocol class)."""
    return [
        (status, {key: value for key, value in body.items() if key != "messages"})
        for status, body in answers
    ]


BODY = os.urandom(5 * MIB + 12345)
CASES = {
    "content-length": request("PATCH", "/upload", BODY),
    "chunked": request(
        "POST",
        "/chunked",
        chunked([BODY[:70000], BODY[70000:300000], b"x"]),
        Transfer_Encoding="chunked",
    ),
    "empty": request("POST", "/empty"),
    "get": b"GET /nothing HTTP/1.1\r\nHost: test\r\n\r\n",
}


@pytest.mark.parametrize("case", CASES)
def test_the_application_is_handed_what_uvicorns_own_class_hands_it(servers, case):
    answers = {name: exchange(port, CASES[case]) for name, (port, _) in servers.items()}
    assert described(answers["ours"]) == described(answers["uvicorn"])
    status, body = answers["ours"][0]
    assert status == 200
    assert body["types"] in ([], ["bytes"])
    if case == "content-length":
        assert body["length"] == len(BODY)
        assert body["sha256"] == hashlib.sha256(BODY).hexdigest()
        assert body["messages"] > 1  # streamed in several messages, not gathered whole


def test_expect_100_continue_then_the_body(servers):
    for name, (port, _) in servers.items():
        head = request("PUT", "/continue", b"", Expect="100-continue").replace(
            b"Content-Length: 0", b"Content-Length: %d" % len(BODY)
        )
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            raw.sendall(head)
            assert raw.recv(64).startswith(b"HTTP/1.1 100 Continue"), name
            raw.sendall(BODY)
            ((status, body),) = read_responses(raw, 1)
        assert status == 200, name
        assert json.loads(body)["sha256"] == hashlib.sha256(BODY).hexdigest(), name


def test_pipelined_requests_each_get_their_own_body(servers):
    first, second = os.urandom(300_000), os.urandom(1_000_000)
    payload = request("PATCH", "/first", first) + request("PATCH", "/second", second)
    answers = {name: exchange(port, payload, count=2) for name, (port, _) in servers.items()}
    assert described(answers["ours"]) == described(answers["uvicorn"])
    assert [(b["path"], b["sha256"]) for _, b in answers["ours"]] == [
        ("/first", hashlib.sha256(first).hexdigest()),
        ("/second", hashlib.sha256(second).hexdigest()),
    ]


def test_a_client_gone_mid_body_ends_it_with_a_disconnect(servers):
    for name, (port, log) in servers.items():
        head = request("PATCH", f"/gone-{name}", b"").replace(
            b"Content-Length: 0", b"Content-Length: %d" % len(BODY)
        )
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            raw.sendall(head + BODY[: 2 * MIB])
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = log.read_text().splitlines() if log.exists() else []
            gone = [e for e in map(json.loads, lines) if e["path"] == f"/gone-{name}"]
            if gone:
                break
            time.sleep(0.05)
        assert gone, name
        assert gone[0]["disconnected"], name
        assert 0 < gone[0]["length"] <= 2 * MIB, name


def test_an_upgrade_to_a_websocket_still_works(servers):
    for name, (port, _) in servers.items():
        with connect(f"ws://127.0.0.1:{port}/socket") as websocket:
            websocket.send("hello")
            assert websocket.recv(timeout=10) == "echo hello", name


def test_every_command_line_that_starts_the_web_server_uses_it():
    def flags(words: list[str]) -> str | None:
        return words[words.index("--http") + 1] if "--http" in words else None

    procfile = next(
        line.split(":", 1)[1].split()
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    dockerfile = json.loads(
        re.search(r"(?s)^CMD (\[.*?\])\s*$", (ROOT / "Dockerfile").read_text(), re.M)
        .group(1)
        .replace("\\\n", "")
    )
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["web"]["command"]
    deployment = next(
        document
        for document in yaml.safe_load_all((ROOT / "deploy/kubernetes/base/web.yaml").read_text())
        if document["kind"] == "Deployment"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    source = (ROOT / "tests/support/processes.py").read_text()
    for where, words in {
        "Procfile": procfile,
        "Dockerfile": dockerfile,
        "compose.yaml": compose,
        "web.yaml": container,
    }.items():
        assert words[0] == "uvicorn", where
        assert flags(words) == OURS, where
    assert f'"--http",\n        "{OURS}",' in source


def test_without_it_the_old_class_copies_every_byte_into_a_bytearray():
    """What the subclass exists for, on the pinned uvicorn: its own class gathers the body in
    a bytearray and hands over a copy (if this fails, uvicorn changed: look again)."""
    import inspect

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

    assert "self.cycle.body += body" in inspect.getsource(HttpToolsProtocol.on_body)
    assert '"body": bytes(self.body)' in inspect.getsource(RequestResponseCycle.receive)
