"""The Solana check: token accounts of both token programs through the JSON-RPC client, then
the Metaplex metadata of each NFT mint, for a verified collection; with several providers, the
whole check moves to the next one when a provider fails."""

import time

from django.conf import settings

from apps.access.gates import Condition
from apps.access.ownership.answers import OwnershipUnavailable
from apps.chain.chains import rpc_urls
from apps.chain.providers import ranked, record

SOLANA_BATCH = 100  # getMultipleAccounts takes at most 100 keys


async def metaplex_held(condition: Condition, accounts: list[str]) -> dict[str, bool]:
    """For each owner: an NFT (amount 1, decimals 0) of the Token or Token-2022 program whose
    Metaplex metadata (owned by the metadata program, at the mint's PDA) names the collection
    as verified. With several providers (CHAIN_RPC_URLS), one that fails or errs gives way to
    the next, in apps.chain.providers' order and with its health records."""
    import httpx2  # solana-py's HTTP client
    from solana.exceptions import SolanaRpcException
    from solana.rpc.core import RPCException

    urls = ranked(condition.chain, rpc_urls(condition.chain))
    for position, url in enumerate(urls):
        started = time.monotonic()
        try:
            held = await _held_at(url, condition, accounts)
        except (
            SolanaRpcException,
            RPCException,  # a JSON-RPC error, e.g. -32005 "node is behind"
            OwnershipUnavailable,
            httpx2.HTTPError,
            OSError,
        ) as error:
            timed_out = isinstance(error.__cause__ or error, httpx2.TimeoutException)
            record(condition.chain, url, "timeout" if timed_out else "error", 0.0)
            if position == len(urls) - 1:
                raise
            continue
        record(condition.chain, url, "ok", time.monotonic() - started)
        return held
    raise OwnershipUnavailable(f"no RPC provider for {condition.chain}")  # urls is never empty


async def _held_at(url: str, condition: Condition, accounts: list[str]) -> dict[str, bool]:
    from solana.rpc.async_api import AsyncClient
    from solana.rpc.models import TokenAccountOpts
    from solders.pubkey import Pubkey

    # Imported here, not at the top: the Solana libraries load only in a process that checks a
    # Metaplex gate (the solana/solders imports above, and metaplex.py's own).
    from apps.access.metaplex import (
        METADATA_PROGRAM,
        TOKEN_2022_PROGRAM,
        TOKEN_PROGRAM,
        MetadataInvalid,
        metadata_address,
        metadata_parse,
    )

    collection = Pubkey.from_string(condition.contract)
    held = dict.fromkeys(accounts, False)
    async with AsyncClient(
        url, timeout=settings.GATE_RPC_TIMEOUT, max_transport_retries=0
    ) as client:
        for account in accounts:
            owner = Pubkey.from_string(account)
            mints: list[Pubkey] = []
            for program in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
                response = _checked(
                    await client.get_token_accounts_by_owner_json_parsed(
                        owner, TokenAccountOpts(program_id=program)
                    )
                )
                for keyed in response.value:
                    info = keyed.account.data.parsed["info"]
                    amount = info["tokenAmount"]
                    if amount["amount"] == "1" and amount["decimals"] == 0:
                        mints.append(Pubkey.from_string(info["mint"]))
            for start in range(0, len(mints), SOLANA_BATCH):
                batch = mints[start : start + SOLANA_BATCH]
                response = _checked(
                    await client.get_multiple_accounts([metadata_address(mint) for mint in batch])
                )
                for mint, found in zip(batch, response.value, strict=True):
                    if found is None or found.owner != METADATA_PROGRAM:
                        continue  # no metadata, or an account someone else's program wrote
                    try:
                        metadata = metadata_parse(found.data)
                    except MetadataInvalid:
                        continue
                    if (
                        metadata.mint == mint
                        and metadata.collection == collection
                        and metadata.collection_verified
                    ):
                        held[account] = True
                        break
                if held[account]:
                    break
    return held


def _checked(response):
    """solana-py returns (rather than raises) JSON-RPC errors whose code solders does not know,
    as a bare int."""
    if isinstance(response, int):
        raise OwnershipUnavailable(f"the node answered JSON-RPC error {response}")
    return response
