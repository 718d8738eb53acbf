"""On-chain state StreamGate keeps: deployed contracts, registrations, indexed events and blocks,
gas samples, IPFS pins."""

from django.db import models
from django.db.models import Q


class ContractKind(models.TextChoices):
    REGISTRY = "registry", "ContentRegistry"
    NFT721 = "nft721", "TestNFT721"
    NFT1155 = "nft1155", "TestNFT1155"
    TOKEN = "token", "TestToken"


class ChainContract(models.Model):
    """A contract deployed by ``deploy_contracts`` (or recorded by hand)."""

    chain = models.CharField(max_length=64, help_text="CAIP-2 chain id, e.g. eip155:1.")
    kind = models.CharField(max_length=16, choices=ContractKind.choices)
    address = models.CharField(max_length=42, help_text="EIP-55 checksummed.")
    deployed_block = models.PositiveBigIntegerField(default=0)
    deploy_tx = models.CharField(max_length=66, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chain", "kind", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "address"], name="contract_unique_address"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.address} on {self.chain}"


class RegistrationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    WAITING_GAS = "waiting_gas", "Waiting for cheaper gas"
    SUBMITTED = "submitted", "Submitted"
    CONFIRMED = "confirmed", "Confirmed"
    FAILED = "failed", "Failed"


class Registration(models.Model):
    """One content's registration on one chain's ContentRegistry."""

    content = models.ForeignKey(
        "content.Content", on_delete=models.CASCADE, related_name="registrations"
    )
    chain = models.CharField(max_length=64)
    contract = models.ForeignKey(ChainContract, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=16, choices=RegistrationStatus.choices, default=RegistrationStatus.PENDING
    )
    cid = models.CharField(max_length=100, blank=True)
    price = models.DecimalField(max_digits=78, decimal_places=0, default=0, help_text="In wei.")
    gate_hash = models.CharField(max_length=66, blank=True)
    creator = models.CharField(
        max_length=42, blank=True, help_text="The creator address recorded on chain."
    )
    sender = models.CharField(max_length=42, blank=True)
    nonce = models.PositiveBigIntegerField(null=True, blank=True)
    tx_hash = models.CharField(max_length=66, blank=True)
    replaced_tx_hashes = models.JSONField(default=list, blank=True)
    max_fee_per_gas = models.DecimalField(max_digits=40, decimal_places=0, null=True, blank=True)
    max_priority_fee_per_gas = models.DecimalField(
        max_digits=40, decimal_places=0, null=True, blank=True
    )
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=66, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    failures = models.PositiveSmallIntegerField(
        default=0, help_text="Steps failed in a row; at CHAIN_STEP_MAX_FAILURES it fails."
    )
    step_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When its next step should run; the reaper resumes it."
    )
    # The step running now holds the lease (a conditional update, no row lock); every write of
    # the step is conditional on its token, so a run that outlived its lease writes nothing.
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["content", "chain"],
                condition=~Q(status="failed"),
                name="registration_one_live_per_chain",
            ),
        ]
        indexes = [models.Index(fields=["status", "step_due_at"], name="registration_due")]

    def __str__(self) -> str:
        return f"{self.content_id} on {self.chain} ({self.status})"


class SignerNonce(models.Model):
    """The next nonce we will use for a signer on a chain; locked while a transaction is built."""

    chain = models.CharField(max_length=64)
    address = models.CharField(max_length=42)
    next_nonce = models.PositiveBigIntegerField(default=0)
    # When a nonce was last handed out: a gap younger than CHAIN_NONCE_GRACE_SECONDS may be a
    # transaction between its reservation and its broadcast (apps/chain/nonces.py).
    reserved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain", "address"], name="nonce_unique_signer"),
        ]

    def __str__(self) -> str:
        return f"{self.address} on {self.chain}: next nonce {self.next_nonce}"


class IndexerCursor(models.Model):
    """How far a chain is indexed, and who is indexing it now (a lease)."""

    chain = models.CharField(max_length=64, unique=True)
    indexed_to = models.BigIntegerField(default=-1, help_text="Last block fully indexed.")
    head = models.BigIntegerField(default=0, help_text="Chain head at the last run.")
    lock_token = models.CharField(max_length=32, blank=True)
    lock_expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.chain} @ {self.indexed_to}"


class IndexedBlock(models.Model):
    """The hash we indexed a block under: a different hash later means a reorganisation."""

    chain = models.CharField(max_length=64)
    number = models.BigIntegerField()
    hash = models.CharField(max_length=66)
    parent_hash = models.CharField(max_length=66)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain", "number"], name="block_unique_number"),
        ]
        indexes = [models.Index(fields=["chain", "-number"], name="block_chain_number")]

    def __str__(self) -> str:
        return f"{self.chain}:{self.number} {self.hash}"


class ChainEvent(models.Model):
    """A decoded log of a contract we follow."""

    chain = models.CharField(max_length=64)
    block_number = models.BigIntegerField()
    block_hash = models.CharField(max_length=66)
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    address = models.CharField(max_length=42)
    name = models.CharField(max_length=64)
    args = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chain", "block_number", "log_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["chain", "tx_hash", "log_index"], name="event_unique_log"
            ),
        ]
        indexes = [
            models.Index(fields=["chain", "block_number"], name="event_chain_block"),
            models.Index(fields=["chain", "address", "name"], name="event_chain_address"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.chain}:{self.block_number}/{self.log_index}"


class GasSample(models.Model):
    chain = models.CharField(max_length=64)
    block_number = models.BigIntegerField()
    base_fee_per_gas = models.DecimalField(max_digits=40, decimal_places=0)
    priority_fee_per_gas = models.DecimalField(max_digits=40, decimal_places=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["chain", "-created_at"], name="gas_chain_created")]

    def __str__(self) -> str:
        return f"{self.chain}:{self.block_number} base {self.base_fee_per_gas}"


class PinStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PINNING = "pinning", "Pinning"
    PINNED = "pinned", "Pinned"
    FAILED = "failed", "Failed"


class Pin(models.Model):
    """A content's source pinned through an IPFS Pinning Service API."""

    content = models.ForeignKey("content.Content", on_delete=models.CASCADE, related_name="pins")
    cid = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=PinStatus.choices, default=PinStatus.QUEUED)
    request_id = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    failures = models.PositiveSmallIntegerField(
        default=0,
        help_text="Times the reaper found it stalled; at CHAIN_STEP_MAX_FAILURES it fails.",
    )
    step_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When its next step should run; the reaper resumes it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "step_due_at"], name="pin_due")]

    def __str__(self) -> str:
        return f"{self.cid or 'CID pending'} ({self.status})"


class OfferSetStatus(models.TextChoices):
    UNSIGNED = "unsigned", "Waiting for the creator's signature"
    RELAYING = "relaying", "Signed; being sent"
    SUBMITTED = "submitted", "Sent"
    LIVE = "live", "Live"
    SUPERSEDED = "superseded", "Replaced"
    FAILED = "failed", "Failed"


class SignedConsent(models.Model):
    """Something a content's on-chain creator signed (EIP-712) for StreamGate to relay to the
    registry: the relayer pays the gas, the registry checks the signature and the nonce."""

    chain = models.CharField(max_length=64)
    registry = models.ForeignKey(ChainContract, on_delete=models.PROTECT, related_name="+")
    creator = models.CharField(max_length=42, help_text="The on-chain creator who signs.")
    status = models.CharField(
        max_length=16, choices=OfferSetStatus.choices, default=OfferSetStatus.UNSIGNED
    )
    nonce = models.DecimalField(max_digits=78, decimal_places=0)
    deadline = models.PositiveBigIntegerField(
        help_text="Unix time after which the signature is void."
    )
    digest = models.CharField(max_length=66, help_text="The EIP-712 hash the creator signs.")
    signature = models.TextField(blank=True)
    sender = models.CharField(max_length=42, blank=True)
    tx_nonce = models.PositiveBigIntegerField(null=True, blank=True)
    tx_hash = models.CharField(max_length=66, blank=True)
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]


class OfferSet(SignedConsent):
    """A content's offers on one chain as its creator signed them. The set the chain confirmed
    last is LIVE; the offers of the content are that set's."""

    content = models.ForeignKey(
        "content.Content", on_delete=models.CASCADE, related_name="offer_sets"
    )
    terms = models.JSONField(
        default=list, help_text="[[kind, token, amount, period], ...] as signed."
    )
    first_offer_id = models.DecimalField(max_digits=78, decimal_places=0, null=True, blank=True)

    class Meta(SignedConsent.Meta):
        indexes = [models.Index(fields=["content", "chain", "status"], name="offerset_content")]

    def __str__(self) -> str:
        return f"offers of {self.content_id} on {self.chain} ({self.status})"


class PayoutChange(SignedConsent):
    """A creator's signed order to send their proceeds on a chain to ``payout``."""

    payout = models.CharField(max_length=42)

    def __str__(self) -> str:
        return f"{self.creator} pays out to {self.payout} on {self.chain} ({self.status})"


class OfferKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    RENTAL = "rental", "Rental"
    MEMBERSHIP = "membership", "Membership"


class Offer(models.Model):
    """One offer of a set, with its currency as the token reports it."""

    offer_set = models.ForeignKey(OfferSet, on_delete=models.CASCADE, related_name="offers")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=OfferKind.choices)
    token = models.CharField(max_length=42, blank=True, help_text="Empty for the native coin.")
    symbol = models.CharField(max_length=32)
    decimals = models.PositiveSmallIntegerField()
    amount = models.DecimalField(max_digits=78, decimal_places=0, help_text="Smallest unit.")
    period_seconds = models.PositiveBigIntegerField(default=0)
    onchain_id = models.DecimalField(
        max_digits=78, decimal_places=0, null=True, blank=True, help_text="Once live."
    )

    class Meta:
        ordering = ["offer_set", "position"]
        constraints = [
            models.UniqueConstraint(fields=["offer_set", "position"], name="offer_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.symbol}"
