"""uvicorn gathers up to STREAMING_BODY_READ_BUFFER bytes of a body per ASGI message
(streamgate/streaming.py), instead of its 64 KiB: fewer messages per upload."""

import pytest
import uvicorn.protocols.http.h11_impl as h11_impl
import uvicorn.protocols.http.httptools_impl as httptools_impl

from streamgate.streaming import server_read_buffer_set


@pytest.fixture
def restored():
    before = httptools_impl.HIGH_WATER_LIMIT, h11_impl.HIGH_WATER_LIMIT
    yield
    httptools_impl.HIGH_WATER_LIMIT, h11_impl.HIGH_WATER_LIMIT = before


def test_the_server_gathers_the_configured_bytes(restored):
    changed = server_read_buffer_set(3 * 1024 * 1024)
    assert "uvicorn.protocols.http.httptools_impl" in changed
    assert httptools_impl.HIGH_WATER_LIMIT == 3 * 1024 * 1024
    assert h11_impl.HIGH_WATER_LIMIT == 3 * 1024 * 1024
