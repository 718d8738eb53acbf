"""CIDs computed locally, cross-checked against ipfs-unixfs-importer (the reference JS importer,
configured as kubo's defaults) run with Node."""

import os
import subprocess
from pathlib import Path

import pytest

from apps.chain.cid import CHUNK_SIZE, MAX_LINKS, cid_of_bytes, cid_of_stream, rechunk
from tests.support.processes import ROOT

REFERENCE = ROOT / "contracts" / "tools" / "unixfs-cid.mjs"


def reference_cid(path: Path) -> str:
    result = subprocess.run(
        ["node", str(REFERENCE), str(path)],
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
