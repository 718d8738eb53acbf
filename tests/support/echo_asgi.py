"""An ASGI app that reports what it was handed, for tests of the HTTP server's protocol class
(tests/streamgate/test_http_protocol.py): each request's body messages are read to the end and
answered with their count, length, sha256 and types; a request whose client went away is written
to the JSON-lines file named by ``ECHO_LOG``. A websocket is accepted and each text echoed."""

import hashlib
import json
import os


async def app(scope, receive, send) -> None:
    if scope["type"] == "websocket":
        await _websocket(receive, send)
        return
    digest = hashlib.sha256()
    messages = length = 0
    kinds = set()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            _log({"path": scope["path"], "disconnected": True, "length": length})
            return
        body = message.get("body", b"")
        messages += 1
        length += len(body)
        kinds.add(type(body).__name__)
        digest.update(body)
        if not message.get("more_body", False):
            break
    answer = json.dumps(
        {
            "method": scope["method"],
            "path": scope["path"],
            "length": length,
            "sha256": digest.hexdigest(),
            "types": sorted(kinds),
            "messages": messages,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


async def _websocket(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": f"echo {message.get('text')}"})
        else:
            return


def _log(entry: dict) -> None:
    with open(os.environ["ECHO_LOG"], "a") as out:
        out.write(json.dumps(entry) + "\n")
