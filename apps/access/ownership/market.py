"""The market's checks: does an account hold a current purchase or rental of a content, or a
current membership of its creator, in the chain's ContentRegistry?

One ``accessUntil`` call answers both, with the expiry and the chain's own time, so that a
"holds" answer is cached no longer than the access lasts (a rental that ends stops playing even
while its answer would otherwise still be fresh).
"""

from django.conf import settings
from eth_utils import to_checksum_address

from apps.access.gates import Condition
from apps.chain.chains import content_id_bytes32, contract_for, web3_for


def market_held(condition: Condition, accounts: list[str]) -> dict[str, tuple[bool, float]]:
    """For each account: (holds, seconds the answer stays true by the chain's clock)."""
    content_id, registry_address = condition.token_ids
    if not registry_address:  # no registry there: nobody bought anything
        return dict.fromkeys(accounts, (False, 0.0))
    web3 = web3_for(condition.chain, timeout=settings.GATE_RPC_TIMEOUT, retries=False)
    registry = contract_for(web3, "ContentRegistry", registry_address)
    content = content_id_bytes32(content_id)
    held = {}
    for account in accounts:
        purchased, membership, chain_time = registry.functions.accessUntil(
            content, to_checksum_address(account)
        ).call()
        until = purchased if condition.kind == "purchase" else membership
        held[account] = (until > chain_time, float(max(0, until - chain_time)))
    return held
