"""Metaplex Token Metadata: the metadata account's address and its Borsh layout (pure).

Layout of a ``MetadataV1`` account (key 4): key u8, update_authority [32], mint [32],
name/symbol/uri (u32 LE length + bytes), seller_fee_basis_points u16,
creators Option<Vec<{address [32], verified u8, share u8}>>, primary_sale_happened u8,
is_mutable u8, edition_nonce Option<u8>, token_standard Option<u8>,
collection Option<{verified u8, key [32]}>, … Accounts written by older program versions end
before the later fields: a field past the end of the data reads as None.
"""

import struct
from dataclasses import dataclass

from solders.pubkey import Pubkey

METADATA_PROGRAM = Pubkey.from_string("metaqbxxUerdq28cj1RbAWkYQm3ybzjb6a8bt518x1s")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
KEY_METADATA_V1 = 4
MAX_CREATORS = 5


class MetadataInvalid(ValueError):
    """The bytes are not a Metaplex metadata account."""


@dataclass(frozen=True)
class Metadata:
    mint: Pubkey
    update_authority: Pubkey
    name: str
    collection: Pubkey | None
    collection_verified: bool


def metadata_address(mint: Pubkey) -> Pubkey:
    """The metadata PDA of ``mint``: seeds ``[b"metadata", program id, mint]``."""
    address, _bump = Pubkey.find_program_address(
        [b"metadata", bytes(METADATA_PROGRAM), bytes(mint)], METADATA_PROGRAM
    )
    return address


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    @property
    def exhausted(self) -> bool:
        return self.offset >= len(self.data)

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise MetadataInvalid("metadata account data ends early")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def boolean(self) -> bool:
        value = self.u8()
        if value > 1:
            raise MetadataInvalid("a Borsh bool is 0 or 1")
        return value == 1

    def string(self, limit: int = 1024) -> str:
        (length,) = struct.unpack("<I", self.take(4))
        if length > limit:
            raise MetadataInvalid("string longer than the program allows")
        return self.take(length).decode("utf-8", errors="replace").rstrip("\x00")

    def option_tag(self) -> bool:
        """Reads an Option's tag; a field past the end (older accounts) reads as None."""
        if self.exhausted:
            return False
        tag = self.u8()
        if tag > 1:
            raise MetadataInvalid("a Borsh Option tag is 0 or 1")
        return tag == 1


def metadata_parse(data: bytes) -> Metadata:
    """Parse a metadata account's data (the account's owner must be checked by the caller)."""
    reader = _Reader(bytes(data))
    if reader.u8() != KEY_METADATA_V1:
        raise MetadataInvalid("not a MetadataV1 account (key)")
    update_authority = Pubkey.from_bytes(reader.take(32))
    mint = Pubkey.from_bytes(reader.take(32))
    name = reader.string()
    reader.string()  # symbol
    reader.string()  # uri
    reader.take(2)  # seller_fee_basis_points
    if reader.option_tag():  # creators
        (count,) = struct.unpack("<I", reader.take(4))
        if count > MAX_CREATORS:
            raise MetadataInvalid("more creators than the program allows")
        reader.take(count * 34)
    collection, verified = None, False
    # primary_sale_happened, is_mutable; older accounts may end here
    if not reader.exhausted:
        reader.boolean()
        reader.boolean()
        if reader.option_tag():  # edition_nonce
            reader.u8()
        if reader.option_tag():  # token_standard
            reader.u8()
        if reader.option_tag():  # collection
            verified = reader.boolean()
            collection = Pubkey.from_bytes(reader.take(32))
    return Metadata(
        mint=mint,
        update_authority=update_authority,
        name=name,
        collection=collection,
        collection_verified=verified,
    )
