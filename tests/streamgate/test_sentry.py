"""SENTRY_DSN turns sentry-sdk on: an error in a real request reaches a Sentry-speaking server."""

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from tests.support.processes import embedded_env, http_get, web_server


class Ingest(BaseHTTPRequestHandler):
    envelopes: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        Ingest.envelopes.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_errors_reach_sentry_without_personal_data(tmp_path, logs_dir):
    server = HTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dsn = f"http://publickey@127.0.0.1:{server.server_port}/42"
    env = embedded_env(tmp_path, SENTRY_DSN=dsn, SENTRY_ENVIRONMENT="ci", STREAMGATE_RELEASE="sg@t")
    try:
        with web_server(env, logs_dir / "web.log") as base:
            # A database that was never migrated: the content list fails with a real exception.
            status, _ = http_get(f"{base}/api/v1/contents/")
            assert status == 500
            for _ in range(100):
                if Ingest.envelopes:
                    break
                threading.Event().wait(0.1)
    finally:
        server.shutdown()
    assert Ingest.envelopes, (logs_dir / "web.log").read_text()[-2000:]
    items = [json.loads(line) for line in Ingest.envelopes[0].splitlines() if line.startswith(b"{")]
    event = next(item for item in items if "exception" in item)
    assert event["environment"] == "ci"
    assert event["release"] == "sg@t"
    assert "OperationalError" in json.dumps(event["exception"])
    assert "user" not in event or "ip_address" not in event.get("user", {})
