import pytest

from tests.support.jsonrpc import hardhat_node


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """``npx hardhat node`` for the module's tests (chain 31337); its URL."""
    log = tmp_path_factory.mktemp("hardhat") / "node.log"
    with hardhat_node(log) as url:
        yield url
