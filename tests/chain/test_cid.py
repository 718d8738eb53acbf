"""CIDs computed locally, cross-checked against ipfs-unixfs-importer (the reference JS importer,
configured as kubo's defaults) run with Node."""

import os
import subprocess
from pathlib import Path

import pytest

from apps.content.cid import (
    CHUNK_SIZE,
    MAX_LINKS,
    CidBuilder,
    cid_of_bytes,
    cid_of_stream,
    rechunk,
)
from tests.support.processes import ROOT

REFERENCE = ROOT / "contracts" / "tools" / "unixfs-cid.mjs"


def reference_cid(path: Path, *shape: int) -> str:
    """The reference importer's CID; ``shape`` (chunk size, links per node) shrinks kubo's."""
    result = subprocess.run(
        ["node", str(REFERENCE), str(path), *map(str, shape)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=ROOT / "contracts",
    )
    return result.stdout.strip()


def file_cid(path: Path) -> str:
    def pieces():
        with path.open("rb") as handle:
            while piece := handle.read(1_000_003):  # deliberately not a chunk multiple
                yield piece

    return cid_of_stream(pieces())


def test_known_vector():
    assert cid_of_bytes(b"hello world\n") == (
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    )


def test_empty_file_is_the_raw_cid_of_nothing():
    assert cid_of_bytes(b"") == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_rechunk_cuts_exact_chunks():
    chunks = list(rechunk([b"a" * 5, b"b" * 7, b"c"], size=4))
    assert [len(c) for c in chunks] == [4, 4, 4, 1]
    assert b"".join(chunks) == b"a" * 5 + b"b" * 7 + b"c"


@pytest.mark.parametrize(
    "size",
    [
        0,  # the empty file
        CHUNK_SIZE,  # exactly one chunk: still a raw leaf
        CHUNK_SIZE + 1,  # two leaves under one node
        1024 * 1024,  # 1 MiB
        MAX_LINKS * CHUNK_SIZE,  # one full node
        MAX_LINKS * CHUNK_SIZE + 1,  # just over a node's 174 links: a second level
        50 * 1024 * 1024,  # 50 MiB
    ],
    ids=["empty", "one-chunk", "two-chunks", "1MiB", "174-links", "175-links", "50MiB"],
)
def test_matches_the_reference_importer(tmp_path, size):
    path = tmp_path / "data.bin"
    with path.open("wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 4 * 1024 * 1024))
            out.write(block)
            remaining -= len(block)
    assert file_cid(path) == reference_cid(path)


@pytest.mark.parametrize(
    "size",
    [1, 4 * 1024, 4 * 1024 + 1, 27 * 1024, 27 * 1024 + 1, 81 * 1024 + 5 * 1024 + 7, 300 * 1024],
    ids=["1B", "one-node", "two-levels", "three-levels", "four-levels", "ragged", "five-levels"],
)
def test_deep_trees_match_the_reference_importer(tmp_path, size):
    """With 1 KiB chunks and 3 links per node, small files build DAGs five levels deep: the
    incremental builder folds full groups as it goes, and must end with the importer's tree."""
    data = os.urandom(size)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    builder = CidBuilder(chunk_size=1024, max_links=3)
    for start in range(0, size, 1000):  # pieces that straddle chunk boundaries
        builder.update(data[start : start + 1000])
    assert builder.cid() == reference_cid(path, 1024, 3)


def test_a_builder_fed_in_any_pieces_gives_one_cid():
    data = os.urandom(3 * CHUNK_SIZE + 12345)
    whole = cid_of_bytes(data)
    for piece_size in (7, 4097, CHUNK_SIZE, CHUNK_SIZE + 1, len(data)):
        builder = CidBuilder()
        for start in range(0, len(data), piece_size):
            builder.update(data[start : start + piece_size])
        assert builder.cid() == whole
    finished = CidBuilder()
    finished.cid()
    with pytest.raises(ValueError, match="already computed"):
        finished.update(b"more")
