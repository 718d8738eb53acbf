"""Ownership answers: does one of a viewer's wallets hold what a gate condition asks?

Split by responsibility: ``answers`` holds the answer and the accounts a condition asks about;
``cache`` keeps answers per (chain, contract, account) and forgets them on a transfer; ``fetch``
asks a condition's chain and stores what it said; ``evm`` and ``solana`` are the checks on each
kind of chain. Callers import from those modules.

Nothing here answers "held" unless a node said so: a failed or slow call is an unknown answer,
which the gate evaluation turns into a 503, never into a yes.
"""
