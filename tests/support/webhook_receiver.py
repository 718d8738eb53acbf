"""A real HTTP receiver for webhook tests and benchmarks, and a tiny DNS server (dnslib).

The receiver records every request (arrival time, path, headers, body) and answers as its
``respond`` callable says: (status, delay seconds, extra headers).
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dnslib import AAAA, QTYPE, RR, A
from dnslib.server import BaseResolver, DNSServer

from tests.support.processes import free_port


@dataclass
class Received:
    at: float  # time.time()
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


Respond = Callable[[Received, int], tuple[int, float, dict[str, str]]]


def ok(received: Received, index: int) -> tuple[int, float, dict[str, str]]:
    return 200, 0.0, {}


class Receiver:
    def __init__(self, host: str = "127.0.0.1", respond: Respond = ok) -> None:
        self.host = host
        self.respond = respond
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.reply = b'{"ok": true}'
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The status line and headers, then the body: two writes, which Nagle's algorithm
            # and the sender's delayed ACK would hold ~40 ms apart on a kept-alive connection.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                item = Received(time.time(), self.path, headers, body)
                with receiver.lock:
                    receiver.received.append(item)
                    index = len(receiver.received) - 1
                status, delay, headers = receiver.respond(item, index)
                if delay:
                    time.sleep(delay)
                reply = receiver.reply
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout test)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def wait(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.received)} of {count} requests after {timeout}s")


@contextmanager
def receiver(host: str = "127.0.0.1", respond: Respond = ok) -> Iterator[Receiver]:
    running = Receiver(host, respond)
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


class _Zone(BaseResolver):
    def __init__(self, records: dict[str, str]) -> None:
        self.records = {name.rstrip(".").lower(): address for name, address in records.items()}

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        address = self.records.get(name)
        if address is None:
            reply.header.rcode = 3  # NXDOMAIN
        elif request.q.qtype == QTYPE.A and ":" not in address:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=1))
        elif request.q.qtype == QTYPE.AAAA and ":" in address:
            reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(address), ttl=1))
        return reply


@contextmanager
def dns_server(records: dict[str, str]) -> Iterator[str]:
    """A DNS server on 127.0.0.1 answering ``records`` (name -> address); yields
    "127.0.0.1:<port>" for WEBHOOK_DNS_NAMESERVERS."""
    port = free_port()
    server = DNSServer(_Zone(records), port=port, address="127.0.0.1", tcp=False)
    server.start_thread()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def webhook_worker(var_dir, log, *, concurrency: int = 8, **extra: str) -> Iterator[None]:
    """A real Celery worker on the "webhooks" queue (threads, as deployed), on the test's
    database and Redis; ``extra`` sets its environment (WEBHOOK_* settings)."""
    import redis
    from django.conf import settings as django_settings

    from tests.support.processes import celery_worker, embedded_env

    db = django_settings.DATABASES["default"]
    env = embedded_env(
        var_dir,
        DJANGO_SETTINGS_MODULE="streamgate.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=django_settings.REDIS_URL,
        WEBHOOK_ALLOW_PRIVATE="1",
        **extra,
    )
    redis.Redis.from_url(django_settings.REDIS_URL).delete("webhooks")  # earlier messages
    with celery_worker(env, log, queues="webhooks", pool="threads", concurrency=concurrency):
        yield
