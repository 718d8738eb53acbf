"""A Channels layer that needs no server: messages are files in a shared folder.

Used by the embedded defaults (no ``REDIS_URL``) so that a Celery worker process can push progress
to websocket consumers living in the web process, as channels-redis does in production. Channels'
own InMemoryChannelLayer cannot: it is private to one process.

Layout under ``root``::

    channels/<channel>/<created_ns>-<rand>.msg  one msgpack message per file, FIFO by name
    channels/<channel>/.alive                    specific channels: the receiver's heartbeat
    groups/<group>/<channel>                     membership; the file's mtime is the join time

A message is written to a hidden temporary name and renamed into place, so a reader never sees half
of one; a reader claims a message by renaming it, so two readers never both get it.

A process-specific channel (``…!…``, one per websocket consumer) is alive while its receiver keeps
touching ``.alive``; once that is older than ``expiry`` (the receiver's process ended or crashed),
sends to it are dropped, group_send forgets it and the periodic sweep removes its folder.
Messages older than ``expiry`` are dropped unread and do not count against ``capacity``, as in
channels-redis.

Limits: receivers poll (``poll_interval``, 50 ms) with a ``scandir`` of their own nearly empty
folder on the event loop, and FIFO order across processes follows the wall clock. That suits one
machine with tens of open pages, which is what the embedded mode is for; use Redis beyond that.
"""

import asyncio
import contextlib
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import msgpack
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

MESSAGE_SUFFIX = ".msg"
HEARTBEAT = ".alive"
SWEEP_INTERVAL = 30.0


class FilesystemChannelLayer(BaseChannelLayer):
    extensions = ["groups", "flush"]

    def __init__(
        self,
        root: str,
        expiry: int = 60,
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: dict | None = None,
        poll_interval: float = 0.05,
        heartbeat_interval: float = 5.0,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.group_expiry = group_expiry
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.root = Path(root)
        self.channels_dir = self.root / "channels"
        self.groups_dir = self.root / "groups"
        self.channels_dir.mkdir(parents=True, exist_ok=True)
        self.groups_dir.mkdir(parents=True, exist_ok=True)
        self._last_sweep = 0.0

    # --- names ---------------------------------------------------------------------------------

    def require_valid_channel_name(self, name: str, receive: bool = False) -> bool:
        super().require_valid_channel_name(name, receive=receive)
        if not name.strip("."):
            raise TypeError("Channel name must not be made of dots only.")
        return True

    def require_valid_group_name(self, name: str) -> bool:
        super().require_valid_group_name(name)
        if not name.strip("."):
            raise TypeError("Group name must not be made of dots only.")
        return True

    # --- channels ------------------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A fresh process-specific channel, alive while its receiver polls it."""
        self._sweep_if_due()
        name = f"{prefix}fs!{secrets.token_hex(8)}"
        folder = self.channels_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / HEARTBEAT).touch()
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` on ``channel``; ChannelFull when its capacity is reached.

        A message for a process-specific channel whose receiver is gone is dropped.
        """
        if not isinstance(message, dict):
            raise TypeError("message is not a dict")
        self.require_valid_channel_name(channel)
        if self._is_specific(channel):
            if self._is_gone(channel):
                return
        else:
            (self.channels_dir / channel).mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # the receiver left during the send
            self._write(channel, message)

    def _write(self, channel: str, message: dict[str, Any]) -> None:
        folder = self.channels_dir / channel
        capacity = self.get_capacity(channel)
        if len(self._pending(folder)) >= capacity and self._live_count(folder) >= capacity:
            raise ChannelFull(channel)
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}{MESSAGE_SUFFIX}"
        temporary = folder / f".{name}.tmp"
        temporary.write_bytes(msgpack.packb(message, use_bin_type=True))
        os.replace(temporary, folder / name)

    async def receive(self, channel: str) -> dict[str, Any]:
        """Wait for the oldest unexpired message on ``channel`` and return it."""
        self.require_valid_channel_name(channel)
        folder = self.channels_dir / channel
        folder.mkdir(parents=True, exist_ok=True)
        heartbeat = folder / HEARTBEAT
        beaten = 0.0
        while True:
            if self._is_specific(channel) and time.monotonic() - beaten > self.heartbeat_interval:
                heartbeat.touch()
                beaten = time.monotonic()
            message = self._take_one(folder)
            if message is not None:
                return message
            await asyncio.sleep(self.poll_interval)

    @staticmethod
    def _is_specific(channel: str) -> bool:
        return "!" in channel

    def _is_gone(self, channel: str) -> bool:
        """True when a process-specific channel's receiver stopped polling ``expiry`` ago."""
        try:
            beat = (self.channels_dir / channel / HEARTBEAT).stat().st_mtime
        except FileNotFoundError:
            return True
        return beat + max(self.expiry, 2 * self.heartbeat_interval) < time.time()

    def _pending(self, folder: Path) -> list[str]:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(name for name in names if name.endswith(MESSAGE_SUFFIX))

    def _is_expired(self, name: str) -> bool:
        created_ns = int(name.split("-", 1)[0])
        return created_ns / 1e9 + self.expiry < time.time()

    def _live_count(self, folder: Path) -> int:
        """Drop expired messages (they would never be delivered) and count the rest."""
        live = 0
        for name in self._pending(folder):
            if self._is_expired(name):
                (folder / name).unlink(missing_ok=True)
            else:
                live += 1
        return live

    def _take_one(self, folder: Path) -> dict[str, Any] | None:
        for name in self._pending(folder):
            claimed = folder / f".{name}.claimed-{os.getpid()}-{secrets.token_hex(2)}"
            try:
                os.rename(folder / name, claimed)
            except FileNotFoundError:
                continue  # another receiver took it
            try:
                if self._is_expired(name):
                    continue
                return msgpack.unpackb(claimed.read_bytes(), raw=False)
            finally:
                claimed.unlink(missing_ok=True)
        return None

    # --- groups --------------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        member = self.groups_dir / group / channel
        member.parent.mkdir(parents=True, exist_ok=True)
        member.touch()
        os.utime(member)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        (self.groups_dir / group / channel).unlink(missing_ok=True)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send to every live member; members whose receiver is gone are dropped."""
        if not isinstance(message, dict):
            raise TypeError("message is not a dict")
        self.require_valid_group_name(group)
        self._sweep_if_due()
        try:
            members = list(os.scandir(self.groups_dir / group))
        except FileNotFoundError:
            return
        joined_after = time.time() - self.group_expiry
        for member in members:
            channel = member.name
            try:
                stale = member.stat().st_mtime < joined_after
            except FileNotFoundError:
                continue  # discarded while we were sending
            if stale or (self._is_specific(channel) and self._is_gone(channel)):
                Path(member.path).unlink(missing_ok=True)
                continue
            try:
                await self.send(channel, message)
            except ChannelFull:
                continue  # as channels-redis does: a slow member must not block the others

    # --- housekeeping --------------------------------------------------------------------------

    def _sweep_if_due(self) -> None:
        if time.monotonic() - self._last_sweep > SWEEP_INTERVAL:
            self._last_sweep = time.monotonic()
            self.sweep()

    def sweep(self) -> None:
        """Remove folders of gone receivers, expired messages and leftovers of crashed writers."""
        too_old = time.time() - self.expiry
        for entry in list(os.scandir(self.channels_dir)):
            if self._is_specific(entry.name) and self._is_gone(entry.name):
                shutil.rmtree(entry.path, ignore_errors=True)
                continue
            with contextlib.suppress(FileNotFoundError):
                for item in os.scandir(entry.path):
                    expired = item.name.endswith(MESSAGE_SUFFIX) and self._is_expired(item.name)
                    leftover = item.name.endswith(".tmp") or ".claimed-" in item.name
                    if expired or (leftover and item.stat().st_mtime < too_old):
                        Path(item.path).unlink(missing_ok=True)

    async def flush(self) -> None:
        for folder in (self.channels_dir, self.groups_dir):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""
