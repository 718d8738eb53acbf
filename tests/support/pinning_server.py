"""A local IPFS Pinning Service API (the spec's POST /pins and GET /pins/{requestid}), so that
the pinning client is tested against a real HTTP peer."""

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PinningServer:
    def __init__(self, token: str = "pin-token") -> None:  # noqa: S107 - a test server's token
        self.token = token
        self.pins: dict[str, dict] = {}
        self.fail_cids: set[str] = set()
        self.polls_until_pinned = 2
        self.force_status: int | None = None  # answer every request with this status
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forced(self) -> bool:
                if server.force_status:
                    self._reply(server.force_status, {"error": {"reason": "BUSY"}})
                    return True
                return False

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._reply(
                        401,
                        {"error": {"reason": "UNAUTHORIZED", "details": "Invalid access token"}},
                    )
                    return False
                return True

            def do_POST(self):
                server.requests.append(("POST", self.path))
                if self._forced() or not self._authorised():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/pins" or not body.get("cid"):
                    self._reply(400, {"error": {"reason": "BAD_REQUEST", "details": "cid?"}})
                    return
                request_id = uuid.uuid4().hex
                server.pins[request_id] = {
                    "requestid": request_id,
                    "status": "queued",
                    "created": "2026-11-23T00:00:00Z",
                    "pin": body,
                    "delegates": [],
                    "polls": 0,
                }
                self._reply(202, _public(server.pins[request_id]))

            def do_GET(self):
                server.requests.append(("GET", self.path))
                if self._forced() or not self._authorised():
                    return
                if self.path.startswith("/pins?"):
                    self._list()
                    return
                request_id = self.path.rsplit("/", 1)[-1]
                pin = server.pins.get(request_id)
                if pin is None:
                    self._reply(404, {"error": {"reason": "NOT_FOUND", "details": "no pin"}})
                    return
                pin["polls"] += 1
                if pin["pin"]["cid"] in server.fail_cids:
                    pin["status"] = "failed"
                    pin["info"] = {"status_details": "content not found on the network"}
                elif pin["polls"] >= server.polls_until_pinned:
                    pin["status"] = "pinned"
                else:
                    pin["status"] = "pinning"
                self._reply(200, _public(pin))

            def _list(self):
                from urllib.parse import parse_qs, urlparse

                query = parse_qs(urlparse(self.path).query)
                matches = [
                    _public(pin)
                    for pin in server.pins.values()
                    if pin["pin"]["cid"] in query.get("cid", [])
                    and pin["pin"].get("name") in query.get("name", [pin["pin"].get("name")])
                ]
                self._reply(200, {"count": len(matches), "results": matches[:1]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "PinningServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()


def _public(pin: dict) -> dict:
    return {key: value for key, value in pin.items() if key != "polls"}
