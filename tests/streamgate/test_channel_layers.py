"""The server-less channel layer used by the embedded defaults."""

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from channels.exceptions import ChannelFull

from streamgate.channel_layers import FilesystemChannelLayer


@pytest.fixture
def layer(tmp_path) -> FilesystemChannelLayer:
    return FilesystemChannelLayer(root=str(tmp_path / "layer"), poll_interval=0.01)


async def test_send_receive_in_order(layer):
    for n in range(5):
        await layer.send("work", {"type": "m", "n": n, "blob": b"\x00\xff"})
    received = [await layer.receive("work") for _ in range(5)]
    assert [m["n"] for m in received] == [0, 1, 2, 3, 4]
    assert received[0]["blob"] == b"\x00\xff"


async def test_capacity(tmp_path):
    layer = FilesystemChannelLayer(root=str(tmp_path), capacity=2)
    await layer.send("c", {"type": "m"})
    await layer.send("c", {"type": "m"})
    with pytest.raises(ChannelFull):
        await layer.send("c", {"type": "m"})


async def test_expired_messages_are_dropped(tmp_path):
    layer = FilesystemChannelLayer(root=str(tmp_path), expiry=1, poll_interval=0.01)
    await layer.send("c", {"type": "old"})
    await asyncio.sleep(1.1)
    await layer.send("c", {"type": "new"})
    assert (await layer.receive("c"))["type"] == "new"


async def test_rejects_bad_names_and_messages(layer):
    with pytest.raises(TypeError):
        await layer.send("bad name", {"type": "m"})
    with pytest.raises(TypeError):
        await layer.send("ok", ["not", "a", "dict"])
    with pytest.raises(TypeError):
        await layer.group_add("bad group!", "ok")


async def test_group_send_reaches_every_member_once(layer):
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("content.1", first)
    await layer.group_add("content.1", second)
    await layer.group_add("content.1", second)  # joining twice is one membership
    await layer.group_send("content.1", {"type": "status", "status": "ready"})
    assert (await layer.receive(first))["status"] == "ready"
    assert (await layer.receive(second))["status"] == "ready"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(second), 0.2)


async def test_group_discard_stops_delivery(layer):
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.group_discard("g", channel)
    await layer.group_send("g", {"type": "m"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.2)


async def test_cancelled_receive_keeps_the_channel(layer):
    """A timeout around receive() is not the end of the receiver (as in channels-redis)."""
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.1)
    await layer.group_send("g", {"type": "m", "n": 1})
    assert (await asyncio.wait_for(layer.receive(channel), 2))["n"] == 1


async def test_gone_receiver_is_dropped_and_swept(tmp_path):
    layer = FilesystemChannelLayer(
        root=str(tmp_path), expiry=1, poll_interval=0.01, heartbeat_interval=0.1
    )
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.05)
    await asyncio.sleep(1.2)  # the receiver stopped polling: its heartbeat goes stale
    await layer.group_send("g", {"type": "m"})
    assert not (layer.groups_dir / "g" / channel).exists()
    await layer.send(channel, {"type": "m"})  # dropped, and no folder is recreated for it
    assert layer._pending(layer.channels_dir / channel) == []
    layer.sweep()
    assert not (layer.channels_dir / channel).exists()


async def test_expired_messages_do_not_fill_a_channel(tmp_path):
    layer = FilesystemChannelLayer(root=str(tmp_path), expiry=1, capacity=2, poll_interval=0.01)
    await layer.send("c", {"type": "m"})
    await layer.send("c", {"type": "m"})
    await asyncio.sleep(1.1)
    await layer.send("c", {"type": "fresh"})
    assert (await layer.receive("c"))["type"] == "fresh"


async def test_group_send_survives_members_leaving_mid_send(layer):
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("g", channel)
    # Another process discards a member and removes another's folder between listing and sending.
    (layer.groups_dir / "g" / channels[0]).unlink()
    shutil.rmtree(layer.channels_dir / channels[1])
    await layer.group_send("g", {"type": "m", "n": 7})
    assert (await asyncio.wait_for(layer.receive(channels[2]), 2))["n"] == 7


@pytest.mark.parametrize("name", [".", "..", "..."])
async def test_dot_names_cannot_escape_the_folder(layer, name):
    with pytest.raises(TypeError):
        await layer.send(name, {"type": "m"})
    with pytest.raises(TypeError):
        await layer.group_add(name, "ok")
    assert sorted(p.name for p in layer.root.iterdir()) == ["channels", "groups"]


async def test_sweep_removes_expired_messages_and_writer_leftovers(tmp_path):
    layer = FilesystemChannelLayer(root=str(tmp_path), expiry=1)
    await layer.send("c", {"type": "m"})
    folder = layer.channels_dir / "c"
    (folder / ".0001-dead.msg.tmp").write_bytes(b"half")
    old = time.time() - 10
    os.utime(folder / ".0001-dead.msg.tmp", (old, old))
    await asyncio.sleep(1.1)
    layer.sweep()
    assert list(folder.iterdir()) == []


async def test_two_receivers_never_get_the_same_message(layer):
    for n in range(40):
        await layer.send("shared", {"type": "m", "n": n})
    results = await asyncio.gather(*[layer.receive("shared") for _ in range(40)])
    assert sorted(m["n"] for m in results) == list(range(40))


async def test_flush(layer):
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.send(channel, {"type": "m"})
    await layer.flush()
    await layer.group_send("g", {"type": "m"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.2)


async def test_messages_cross_processes(layer):
    """A separate Python process (the Celery worker's situation) sends to our group."""
    channel = await layer.new_channel()
    await layer.group_add("content.42", channel)
    script = textwrap.dedent(f"""
        from asgiref.sync import async_to_sync
        from streamgate.channel_layers import FilesystemChannelLayer
        layer = FilesystemChannelLayer(root={str(layer.root)!r})
        for percent in (10.0, 55.5, 100.0):
            async_to_sync(layer.group_send)(
                "content.42", {{"type": "transcode", "stage": "encode", "percent": percent}})
    """)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(3)]
    assert [m["percent"] for m in received] == [10.0, 55.5, 100.0]
    assert time.monotonic() - started < 10
