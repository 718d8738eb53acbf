"""Signals other apps listen to."""

from django.dispatch import Signal

# Sent after commit when the indexer sees NFT transfers (or rolls them back in a reorg);
# kwargs: chain (CAIP-2), contract (address), accounts (the senders and receivers). The access
# app drops its cached ownership answers for those accounts.
nft_transfer_seen = Signal()
