"""The market's doors reach a chain through ``market_web3``: a chain a content is registered
on but this server has no RPC for (any longer) is the caller's 409, not a 500; and inside
``node_answers`` a node that does not answer is a 503 to retry."""

import logging
from contextlib import contextmanager

from requests.exceptions import RequestException
from web3 import Web3
from web3.exceptions import Web3RPCError

from apps.chain.chains import ChainNotConfigured, web3_for
from streamgate.exceptions import Conflict, Unavailable

logger = logging.getLogger(__name__)


def market_web3(caip2: str) -> Web3:
    """``web3_for(caip2)``, or Conflict (409, ``chain_not_configured``) without an RPC."""
    try:
        return web3_for(caip2)
    except ChainNotConfigured as error:
        raise Conflict(str(error), reason="chain_not_configured") from None


@contextmanager
def node_answers():
    """A node that is down, slow or answering errors while a market request needs it is a 503
    with ``Retry-After`` (``chain_unavailable``), never a 500."""
    try:
        yield
    except (RequestException, Web3RPCError, TimeoutError, ConnectionError) as error:
        logger.warning("chain node failed a market request", extra={"error": repr(error)[:300]})
        raise ChainNodeUnavailable(
            "The chain's node did not answer; try again in a moment.",
            reason="chain_unavailable",
            retry_after=10,
        ) from error


class ChainNodeUnavailable(Unavailable):
    """A chain's node did not answer a market request."""
