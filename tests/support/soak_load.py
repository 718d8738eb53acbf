"""The soak benchmark's load (tests/benchmarks/soak.py): creators uploading with a resuming tus
client, viewers browsing and watching, /readyz probes, and the timeline that takes the services
away and brings them back while they run."""

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.soak_clients import (
    HttpConnection,
    Recorder,
    ResumingUploader,
    UploadGaveUp,
    UploadRecord,
    playlist_uris,
)
from tests.support.soak_stack import Poller, Proxies

# A fault: (target, action), e.g. ("postgres", "down"), ("rpc-a", "down"), ("worker", "kill");
# a phase: (name, seconds, fault or None). ``Soak.act(target, "up")`` ends a fault.
Phase = tuple[str, float, tuple[str, str] | None]
SIGNIN_SHARE = 0.15  # of viewer visits, when wallets hold the gated content's token


@dataclass
class Soak:
    """The load and its records: what the clients did and saw, the phases as they ran."""

    args: argparse.Namespace  # the benchmark's options (rates, timeouts)
    port: int
    recorder: Recorder
    poller: Poller
    creator_tokens: list[str]
    viewer_tokens: list[str]
    clips: list[bytes]
    folder: Path
    rng: random.Random
    ready: list[str] = field(default_factory=list)  # ready contents the viewers know of
    uploads: list[UploadRecord] = field(default_factory=list)
    draining: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    phases: list[tuple[str, float, float]] = field(default_factory=list)  # (name, start, end)
    ups: list[tuple[str, float]] = field(default_factory=list)  # (fault, time of up())
    delayed: list[tuple[str, float]] = field(default_factory=list)  # (phase, wait for a slot)
    t0_wall: float = 0.0  # time.time() when the timeline began, to place log lines
    # Wallet sign-ins (SIWE) followed by watching ``gated`` (an ERC-721 gate whose decision
    # asks the chain through the RPC providers); empty: no sign-ins.
    wallet_keys: list[str] = field(default_factory=list)
    gated: list[str] = field(default_factory=list)
    chain_id: int = 31337
    act: Callable[[str, str], object] | None = None  # starts and ends a fault; proxies.set

    # -- creators ---------------------------------------------------------------------------

    def upload_one(self, token: str, index: int) -> UploadRecord:
        """Upload a clip made unique by random padding, as a client that resumes after errors;
        the record says whether it finished or why the client gave up."""
        clip = self.clips[index % len(self.clips)]
        padding = os.urandom(random.randint(64, 512) * 1024)  # unique bytes, a readable video
        data = clip + (len(padding) + 8).to_bytes(4, "big") + b"free" + padding
        title = f"soak {index:04d} {uuid.uuid4().hex[:6]}"
        path = self.folder / "uploads" / f"{title.replace(' ', '-')}.mp4"
        path.write_bytes(data)
        record = UploadRecord(
            path=path,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            title=title,
            started=time.monotonic(),
        )
        self.uploads.append(record)
        uploader = ResumingUploader(
            record=record,
            recorder=self.recorder,
            endpoint=f"http://127.0.0.1:{self.port}/api/v1/uploads/",
            token=token,
            chunk_size=self.args.chunk_kib * 1024,
            pause=self.args.patch_pause,
            patience=self.args.client_patience,
            stop=self.stop,
        )
        try:
            uploader.run()
        except UploadGaveUp as error:
            record.gave_up = str(error)
        return record

    def creator(self, number: int, numbers: Iterator[int]) -> None:
        """Start an upload every ``--upload-every`` s (creators take turns), until the drain."""
        token = self.creator_tokens[number]
        due = time.monotonic() + number * self.args.upload_every / len(self.creator_tokens)
        while not self.draining.wait(max(0.0, due - time.monotonic())):
            self.upload_one(token, next(numbers))
            due = max(due + self.args.upload_every, time.monotonic())

    # -- viewers ----------------------------------------------------------------------------

    async def visit(self, token: str) -> None:
        """One viewer's visit on a new connection: the catalog, a detail, or watching."""
        auth = {"Authorization": f"Bearer {token}"}
        http = HttpConnection(self.port, self.recorder, timeout=self.args.request_timeout)
        try:
            if self.wallet_keys and self.gated and self.rng.random() < SIGNIN_SHARE:
                await self.sign_in_and_watch(http)
                return
            pick = self.rng.random()
            if pick < 0.4 or not self.ready:
                await self.read_catalog(http, auth)
            elif pick < 0.7:
                path = f"/api/v1/contents/{self.rng.choice(self.ready)}/"
                await http.request("api read", "GET", path, auth)
            else:  # these viewers hold no wallet: the gated content is the wallet holders'
                open_ones = [c for c in self.ready if c not in self.gated] or self.ready
                await self.watch(http, auth, self.rng.choice(open_ones))
        finally:
            await http.close()

    async def read_catalog(self, http: HttpConnection, auth: dict[str, str]) -> None:
        response = await http.request(
            "api read", "GET", "/api/v1/contents/?status=ready&page_size=50", auth
        )
        if response is not None and response.status == 200:
            found = [item["id"] for item in json.loads(response.body)["results"]]
            if found:
                self.ready[:] = found

    async def watch(self, http: HttpConnection, auth: dict[str, str], content_id: str) -> None:
        grant = await http.request(
            "playback", "POST", f"/api/v1/contents/{content_id}/playback/", auth
        )
        if grant is None or grant.status != 200:
            return
        master_path = urlsplit(json.loads(grant.body)["hls_url"]).path
        folder = master_path.rsplit("/", 1)[0] + "/"
        master = await http.request("stream", "GET", master_path, {})
        if master is None or master.status != 200:
            return
        variants = playlist_uris(master.body.decode())
        media = await http.request("stream", "GET", folder + self.rng.choice(variants), {})
        if media is None or media.status != 200:
            return
        uris = playlist_uris(media.body.decode())
        init = [uri for uri in uris if "init" in uri][:1]
        for uri in init + [self.rng.choice([uri for uri in uris if uri not in init])]:
            await http.request("stream", "GET", folder + uri, {})

    async def sign_in_and_watch(self, http: HttpConnection) -> None:
        """A wallet holder signs in with Ethereum (nonce, EIP-4361 message, signature), then
        watches the gated content with the token it got: a gate decision that asks the chain."""
        from eth_account import Account
        from eth_account.messages import encode_defunct
        from siwe import SiweMessage

        nonce = await http.request("sign-in", "POST", "/api/v1/auth/siwe/nonce/", {})
        if nonce is None or nonce.status != 201:
            return
        cookie = nonce.headers.get("set-cookie", "").split(";", 1)[0]
        account = Account.from_key(self.rng.choice(self.wallet_keys))
        text = SiweMessage(
            scheme="http",
            domain=f"127.0.0.1:{self.port}",
            address=account.address,
            uri=f"http://127.0.0.1:{self.port}",
            version="1",
            chain_id=self.chain_id,
            issued_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            nonce=json.loads(nonce.body)["nonce"],
            statement="Sign in to StreamGate.",
        ).prepare_message()
        signature = account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()
        verified = await http.request(
            "sign-in",
            "POST",
            "/api/v1/auth/siwe/verify/",
            {"Content-Type": "application/json", "Cookie": cookie},
            json.dumps({"message": text, "signature": signature}).encode(),
        )
        if verified is None or verified.status != 200:
            return
        token = json.loads(verified.body)["token"]
        await self.watch(http, {"Authorization": f"Bearer {token}"}, self.rng.choice(self.gated))

    async def viewers(self) -> None:
        """Poisson arrivals at ``--rate`` visits/s, at most ``--in-flight`` at a time."""
        slots = asyncio.Semaphore(self.args.in_flight)
        running: set[asyncio.Task] = set()

        async def one(token: str) -> None:
            # A visit that finds every slot taken waits; that wait is not in any request's
            # latency, so it is counted apart (a server that hangs shows here too).
            arrived, phase = time.monotonic(), self.recorder.phase
            async with slots:
                if time.monotonic() - arrived > 0.05:
                    self.delayed.append((phase, time.monotonic() - arrived))
                await self.visit(token)

        due = time.monotonic()
        while not self.stop.is_set():
            due += self.rng.expovariate(self.args.rate)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(one(self.rng.choice(self.viewer_tokens)))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running, return_exceptions=True)

    async def readyz(self) -> None:
        """/readyz twice a second, each probe on its own (a hung probe does not stop the next)."""
        running: set[asyncio.Task] = set()

        async def probe() -> None:
            http = HttpConnection(self.port, self.recorder, timeout=self.args.request_timeout)
            await http.request("readyz", "GET", "/readyz", {})
            await http.close()

        while not self.stop.is_set():
            task = asyncio.create_task(probe())
            running.add(task)
            task.add_done_callback(running.discard)
            await asyncio.sleep(0.5)
        await asyncio.gather(*running, return_exceptions=True)

    # -- the timeline -----------------------------------------------------------------------

    def settled(self) -> bool:
        """Every upload ended (finished or given up), and every finished one's content is
        ready or failed."""
        for record in self.uploads:
            if record.finished is None and not record.gave_up:
                return False
            if record.finished is not None:
                content = self.poller.upload_content.get(record.url.rsplit("/", 1)[-1])
                if self.poller.status.get(content) not in ("ready", "failed"):
                    return False
        return True

    async def run(self, timeline: list[Phase], proxies: Proxies) -> None:
        """The phases in order, each fault's service down for its phase; then the drain."""
        self.t0_wall, self.recorder.phase = time.time(), timeline[0][0]
        loops = [asyncio.create_task(self.viewers()), asyncio.create_task(self.readyz())]
        numbers = itertools.count(1)
        creators = [
            threading.Thread(target=self.creator, args=(n, numbers), daemon=True)
            for n in range(len(self.creator_tokens))
        ]
        for thread in creators:
            thread.start()
        before_fault = [bool(phase[2]) for phase in timeline[1:]] + [False]
        for index, (name, seconds, fault) in enumerate(timeline):
            start = time.monotonic()
            self.recorder.phase = name
            act = self.act or proxies.set
            if fault:
                await asyncio.to_thread(act, *fault)
            print(f"  {start - self.phases[0][1] if self.phases else 0:6.1f} s  {name}", flush=True)
            ahead = self.args.straddle if before_fault[index] else 0
            await asyncio.sleep(seconds - ahead)
            if ahead:
                # An upload started just before the fault is in flight when it strikes, however
                # the creators' schedule happens to fall.
                token = self.creator_tokens[index % len(self.creator_tokens)]
                creators.append(
                    threading.Thread(
                        target=self.upload_one, args=(token, next(numbers)), daemon=True
                    )
                )
                creators[-1].start()
                await asyncio.sleep(ahead)
            if fault:
                await asyncio.to_thread(act, fault[0], "up")
                self.ups.append((name, time.monotonic()))
            self.phases.append((name, start, time.monotonic()))
        start = time.monotonic()
        self.recorder.phase = "drain"
        self.draining.set()
        print(f"  {start - self.phases[0][1]:6.1f} s  drain", flush=True)
        while time.monotonic() - start < self.args.drain_timeout:
            if not any(t.is_alive() for t in creators) and self.settled():
                break
            await asyncio.sleep(1.0)
        self.phases.append(("drain", start, time.monotonic()))
        self.stop.set()
        await asyncio.gather(*loops)

    def seed(self) -> None:
        """One upload per creator, encoded before the timeline starts, so viewers have something
        to watch; these requests are not counted."""
        threads = [
            threading.Thread(target=self.upload_one, args=(token, -1 - n))
            for n, token in enumerate(self.creator_tokens)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ready = [c for c, status in self.poller.status.items() if status == "ready"]
            if len(ready) >= len(self.creator_tokens):
                self.ready[:] = ready
                break
            time.sleep(1)
        else:
            raise SystemExit(f"seed contents not ready after 300 s: {self.poller.status}")
        self.recorder.rows.clear()
        self.uploads.clear()
