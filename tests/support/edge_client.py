"""Requests through the served ASGI stack (the edge in front of Django), and whether the edge
answered them."""

from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from prometheus_client import REGISTRY


def edge_hits() -> float:
    return REGISTRY.get_sample_value("streamgate_edge_responses_total", {"outcome": "hit"}) or 0


def asgi_get(app, path: str, token: str | None = None, method: str = "GET", **headers: str) -> dict:
    sent = [(b"host", b"testserver")]
    if token:
        sent.append((b"authorization", f"Bearer {token}".encode()))
    sent += [(name.replace("_", "-").lower().encode(), v.encode()) for name, v in headers.items()]

    async def go():
        communicator = HttpCommunicator(app, method, path, headers=sent)
        await communicator.send_input({"type": "http.request", "body": b""})
        response = await communicator.receive_output(timeout=10)
        assert response.pop("type") == "http.response.start"
        response["body"] = b""
        while True:  # ASGI lets a body message leave "body" out (Django's last one does)
            chunk = await communicator.receive_output(timeout=10)
            assert chunk["type"] == "http.response.body"
            response["body"] += chunk.get("body", b"")
            if not chunk.get("more_body", False):
                break
        await communicator.wait(timeout=10)  # the edge stores after the client has its answer
        return response

    response = async_to_sync(go)()
    response["headers"] = {n.decode().lower(): v.decode() for n, v in response["headers"]}
    return response
