"""The EVM checks: ``balanceOf`` / ``ownerOf`` of ERC-721 contracts and ``balanceOfBatch`` of
ERC-1155 contracts, through web3.

An answer that cannot be decoded means "nobody holds it" only where no contract is deployed;
otherwise the node answered garbage and the answer stays unknown.
"""

from django.conf import settings
from eth_utils import to_checksum_address
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from apps.access.gates import Condition
from apps.access.ownership.answers import OwnershipUnavailable
from apps.chain.chains import web3_for

ERC721_ABI = [
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "name": "ownerOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "tokenId", "type": "uint256"}],
        "outputs": [{"name": "", "type": "address"}],
    },
]
ERC1155_ABI = [
    {
        "name": "balanceOfBatch",
        "type": "function",
        "stateMutability": "view",
        "inputs": [
            {"name": "accounts", "type": "address[]"},
            {"name": "ids", "type": "uint256[]"},
        ],
        "outputs": [{"name": "", "type": "uint256[]"}],
    },
]


def _reverts() -> tuple[type[Exception], ...]:
    """What a reverted call raises: web3's error for nodes, eth-tester's for its in-process
    chain (which web3 passes through as is)."""
    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:  # eth-tester is a development dependency
        return (ContractLogicError,)
    return (ContractLogicError, TransactionFailed)


def evm_held(condition: Condition, accounts: list[str]) -> dict[str, bool]:
    """For each account: whether it holds a token of the condition's ERC-721 contract (any
    token, or one of its token ids), or ``min_balance`` of one of its ERC-1155 token ids."""
    web3 = web3_for(condition.chain, timeout=settings.GATE_RPC_TIMEOUT, retries=False)
    checksummed = [to_checksum_address(a) for a in accounts]
    if condition.kind == "erc1155":
        contract = web3.eth.contract(address=condition.contract, abi=ERC1155_ABI)
        ids = [int(token_id) for token_id in condition.token_ids]
        owners = [a for a in checksummed for _ in ids]
        try:
            balances = contract.functions.balanceOfBatch(owners, ids * len(checksummed)).call()
        except BadFunctionCallOutput:  # no contract there (nobody holds it) or a bad node
            _no_contract(web3, condition)
            return dict.fromkeys(accounts, False)
        per_account = [balances[i * len(ids) : (i + 1) * len(ids)] for i in range(len(accounts))]
        return {
            account: any(balance >= condition.min_balance for balance in found)
            for account, found in zip(accounts, per_account, strict=True)
        }
    contract = web3.eth.contract(address=condition.contract, abi=ERC721_ABI)
    if not condition.token_ids:
        held = {}
        for account, address in zip(accounts, checksummed, strict=True):
            try:
                held[account] = contract.functions.balanceOf(address).call() > 0
            except BadFunctionCallOutput:
                _no_contract(web3, condition)
                held[account] = False
        return held
    owners = set()
    for token_id in condition.token_ids:
        try:
            owners.add(contract.functions.ownerOf(int(token_id)).call().lower())
        except _reverts():  # no such token
            continue
        except BadFunctionCallOutput:
            _no_contract(web3, condition)
            continue
    return {account: account.lower() in owners for account in accounts}


def _no_contract(web3, condition: Condition) -> None:
    """Called when a call's answer could not be decoded: fine (nobody holds anything) if no
    contract is deployed at the address; otherwise the node answered garbage (an unsynced or
    broken node returns empty data), which must stay an unknown answer, never a "no" that a
    ``not`` rule would turn into a yes."""
    if web3.eth.get_code(condition.contract):
        raise OwnershipUnavailable(f"{condition.chain} returned undecodable data")
