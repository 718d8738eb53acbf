"""The market's doors reach a chain through ``market_web3``: a chain a content is registered
on but this server has no RPC for (any longer) is the caller's 409, not a 500."""

from web3 import Web3

from apps.chain.chains import ChainNotConfigured, web3_for
from streamgate.exceptions import Conflict


def market_web3(caip2: str) -> Web3:
    """``web3_for(caip2)``, or Conflict (409, ``chain_not_configured``) without an RPC."""
    try:
        return web3_for(caip2)
    except ChainNotConfigured as error:
        raise Conflict(str(error), reason="chain_not_configured") from None
