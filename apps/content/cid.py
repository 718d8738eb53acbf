"""IPFS CIDv1 of a file, computed locally exactly as kubo's defaults do (pure, no Django).

kubo (`ipfs add --cid-version=1`): 256 KiB fixed-size chunks, raw leaves, a balanced DAG of
UnixFS File nodes with at most 174 links each, sha2-256. A file of one chunk is a raw block, so its
CID is the raw codec's CID of the bytes themselves. Knowing the CID before any IPFS node has the
file lets us register it on chain and later verify what a pinning service pinned.
"""

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import multibase

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
UNIXFS_FILE = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _field(number, 2) + _varint(len(payload)) + payload


def _uint_field(number: int, value: int) -> bytes:
    return _field(number, 0) + _varint(value)


def cid_bytes(codec: int, data: bytes | bytearray | memoryview) -> bytes:
    """CIDv1 in binary: version, codec, sha2-256 multihash of ``data``."""
    digest = hashlib.sha256(data).digest()
    return _varint(1) + _varint(codec) + _varint(SHA2_256) + _varint(len(digest)) + digest


def cid_string(binary: bytes) -> str:
    """The multibase base32 (lowercase, unpadded) form kubo prints: ``bafy…`` / ``bafk…``."""
    return multibase.encode("base32", binary).decode()


@dataclass(frozen=True)
class _Node:
    cid: bytes
    file_size: int  # bytes of the file under this node
    dag_size: int  # Tsize: bytes of every block under this node, itself included


def _leaf(chunk: bytes | bytearray | memoryview) -> _Node:
    return _Node(cid=cid_bytes(RAW, chunk), file_size=len(chunk), dag_size=len(chunk))


def _parent(children: list[_Node]) -> _Node:
    """A UnixFS File node over ``children`` in dag-pb (links first, then data: canonical)."""
    unixfs = _uint_field(1, UNIXFS_FILE) + _uint_field(3, sum(c.file_size for c in children))
    for child in children:
        unixfs += _uint_field(4, child.file_size)
    block = b""
    for child in children:
        link = _bytes_field(1, child.cid) + _bytes_field(2, b"") + _uint_field(3, child.dag_size)
        block += _bytes_field(2, link)
    block += _bytes_field(1, unixfs)
    return _Node(
        cid=cid_bytes(DAG_PB, block),
        file_size=sum(c.file_size for c in children),
        dag_size=len(block) + sum(c.dag_size for c in children),
    )


def rechunk(pieces: Iterable[bytes], size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Cut a stream of arbitrary pieces into chunks of exactly ``size`` (the last shorter)."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class CidBuilder:
    """The CIDv1 of a file fed piece by piece, as kubo would give it: call ``update`` with the
    bytes in order, then ``cid()``. Memory holds one chunk and fewer than ``max_links`` small
    records per level of the DAG, so the read that feeds a sha256 can feed it too (upload
    finalisation). ``chunk_size`` and ``max_links`` are kubo's unless a test shrinks them."""

    def __init__(self, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS) -> None:
        self._chunk_size, self._max_links = chunk_size, max_links
        self._buffer = bytearray()
        # _levels[0] holds leaves, _levels[1] their parents, …; a level is folded into one
        # node of the level above as soon as it has max_links nodes, as kubo's balanced
        # builder groups them from the left.
        self._levels: list[list[_Node]] = [[]]
        self._done: str | None = None

    def update(self, piece: bytes) -> None:
        if self._done is not None:
            raise ValueError("this CID is already computed")
        size = self._chunk_size
        view = memoryview(piece)  # slices of a view hash without copying the bytes
        if self._buffer:
            missing = size - len(self._buffer)
            self._buffer += view[:missing]
            view = view[missing:]
            if len(self._buffer) < size:
                return
            self._push(0, _leaf(self._buffer))
            self._buffer = bytearray()
        while len(view) >= size:
            self._push(0, _leaf(view[:size]))
            view = view[size:]
        self._buffer += view

    def _push(self, height: int, node: _Node) -> None:
        if height == len(self._levels):
            self._levels.append([])
        level = self._levels[height]
        level.append(node)
        if len(level) == self._max_links:
            self._levels[height] = []
            self._push(height + 1, _parent(level))

    def cid(self) -> str:
        """The CID of every byte fed so far; the builder takes no more bytes after."""
        if self._done is None:
            self._done = cid_string(self._root().cid)
        return self._done

    def _root(self) -> _Node:
        if self._buffer or not any(self._levels):
            self._push(0, _leaf(bytes(self._buffer)))  # the short last chunk, or the empty file
            self._buffer.clear()
        top = max(height for height, level in enumerate(self._levels) if level)
        # Below the top, what remains is a partial group: kubo still gives it a parent.
        for height in range(top):
            if self._levels[height]:
                self._levels[height + 1].append(_parent(self._levels[height]))
                self._levels[height] = []
        level = self._levels[top]
        return level[0] if len(level) == 1 else _parent(level)


def cid_of_stream(pieces: Iterable[bytes]) -> str:
    """The CIDv1 kubo would give the file whose bytes are ``pieces`` (streamed)."""
    builder = CidBuilder()
    for piece in pieces:
        builder.update(piece)
    return builder.cid()


def cid_of_bytes(data: bytes) -> str:
    return cid_of_stream([data])


def multihash_of(cid: str) -> bytes:
    """The multihash a CID names, whatever its version and text encoding (Qm…, bafy…, k…)."""
    if cid.startswith("Qm") and len(cid) == 46:  # CIDv0: a bare base58btc multihash
        return bytes(multibase.decode("z" + cid))
    binary = bytes(multibase.decode(cid))
    position = 0
    for _ in range(2):  # version, then codec
        while binary[position] & 0x80:
            position += 1
        position += 1
    return binary[position:]


def same_content(first: str, second: str) -> bool:
    """Whether two CIDs name the same bytes (a service may answer in CIDv0 or base36)."""
    try:
        return multihash_of(first) == multihash_of(second)
    except (ValueError, IndexError):
        return first == second
