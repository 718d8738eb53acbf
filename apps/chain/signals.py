"""Signals other apps listen to."""

from django.dispatch import Signal

# Sent after commit when the indexer sees NFT transfers (or rolls them back in a reorg);
# kwargs: chain (CAIP-2), contract (address), accounts (the senders and receivers). The access
# app drops its cached ownership answers for those accounts.
nft_transfer_seen = Signal()

# Sent after commit when the registry's access records change for accounts (a purchase, a rental,
# a membership, a grant; or such a record rolled back in a reorganisation), and when a buyer's
# purchase transaction is confirmed before the indexer gets to it; kwargs: chain (CAIP-2),
# accounts. The access app drops its cached purchase and membership answers for those accounts.
registry_access_changed = Signal()
