"""The chain app's failures worth another attempt: the node or storage did not answer, or
answered an error. Tasks retry them (``autoretry_for``); steps and services catch them."""

from requests.exceptions import RequestException
from web3.exceptions import Web3RPCError

from apps.content.storage import StorageUnavailable

TRANSIENT = (RequestException, Web3RPCError, TimeoutError, ConnectionError, StorageUnavailable)
