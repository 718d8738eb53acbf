"""What a price is paid in: the chain's native coin or an ERC-20, with the symbol and decimals
buyers see, and whether the token takes EIP-2612 permits (one signature instead of an approve
transaction). Read from the token itself, once per process."""

from dataclasses import dataclass

from eth_utils import to_checksum_address
from web3 import Web3

from apps.chain.chains import rpc_url
from apps.chain.typed_data import NATIVE
from streamgate.exceptions import DomainError

NATIVE_SYMBOLS = {"eip155:137": "POL", "eip155:80002": "POL"}

ERC20_ABI = [
    {
        "name": name,
        "type": "function",
        "stateMutability": "view",
        "inputs": inputs,
        "outputs": [{"name": "", "type": output}],
    }
    for name, inputs, output in (
        ("symbol", [], "string"),
        ("decimals", [], "uint8"),
        ("nonces", [{"name": "owner", "type": "address"}], "uint256"),
        (
            "allowance",
            [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
            "uint256",
        ),
        ("balanceOf", [{"name": "account", "type": "address"}], "uint256"),
    )
] + [
    {
        "name": "approve",
        "type": "function",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "spender", "type": "address"},
            {"name": "value", "type": "uint256"},
        ],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {  # EIP-5267: the token's own EIP-712 domain, which a permit is signed under
        "name": "eip712Domain",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [
            {"name": "fields", "type": "bytes1"},
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
            {"name": "salt", "type": "bytes32"},
            {"name": "extensions", "type": "uint256[]"},
        ],
    },
]


@dataclass(frozen=True)
class Currency:
    address: str  # NATIVE for the chain's coin
    symbol: str
    decimals: int
    permit_domain: tuple[str, str] | None = None  # (name, version) when it takes permits


def erc20(web3: Web3, token: str):
    return web3.eth.contract(address=to_checksum_address(token), abi=ERC20_ABI)


def currency_of(web3: Web3, caip2: str, token: str) -> Currency:
    """The currency at ``token`` on ``caip2`` (NATIVE: the chain's coin); DomainError (400) when
    the address holds no ERC-20."""
    if int(token, 16) == 0:
        return Currency(NATIVE, NATIVE_SYMBOLS.get(caip2, "ETH"), 18)
    key = (rpc_url(caip2), to_checksum_address(token))
    if key not in _tokens:
        _tokens[key] = _token(web3, caip2, key[1])
    return _tokens[key]


# By endpoint and address (a token's symbol and decimals never change); bounded by the offers
# creators make.
_tokens: dict[tuple[str, str], Currency] = {}


def _token(web3: Web3, caip2: str, token: str) -> Currency:
    contract = erc20(web3, token)
    try:
        symbol = str(contract.functions.symbol().call())[:32]
        decimals = int(contract.functions.decimals().call())
    except Exception as error:
        if not web3.eth.get_code(token):
            raise DomainError(f"No contract at {token} on {caip2}.", reason="currency") from error
        raise DomainError(
            f"{token} on {caip2} does not answer symbol() and decimals(): not an ERC-20.",
            reason="currency",
        ) from error
    try:
        domain = contract.functions.eip712Domain().call()
        contract.functions.nonces(token).call()
        permit = (str(domain[1]), str(domain[2]))
    except Exception:  # noqa: BLE001 - no permit: buyers approve first
        permit = None
    return Currency(token, symbol, decimals, permit)
