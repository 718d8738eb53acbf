"""What a restore needs of the master keys: named by fingerprint, compared, never carried."""

import base64

from apps.transcode.backup_checks import master_keys_missing
from apps.transcode.keys import master_key_fingerprint

KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()


def test_the_same_keys_are_enough_and_the_fingerprint_is_not_the_key(settings):
    settings.MEDIA_MASTER_KEYS = {"m1": KEY_A}
    fingerprint = master_key_fingerprint("m1")
    assert fingerprint is not None
    assert len(fingerprint) == 16
    assert fingerprint not in (KEY_A, (b"a" * 32).hex())
    assert master_keys_missing({"m1": fingerprint}) == []


def test_a_missing_or_different_master_key_is_named(settings):
    settings.MEDIA_MASTER_KEYS = {"m1": KEY_A}
    needed = {"m1": master_key_fingerprint("m1")}
    settings.MEDIA_MASTER_KEYS = {"m2": KEY_A}
    [missing] = master_keys_missing(needed)
    assert "master key 'm1', which MEDIA_MASTER_KEYS does not hold here" in missing
    settings.MEDIA_MASTER_KEYS = {"m1": KEY_B}
    [different] = master_keys_missing(needed)
    assert "MEDIA_MASTER_KEYS['m1'] here is not the key" in different


def test_a_key_derived_from_another_secret_key_says_so(settings):
    settings.MEDIA_MASTER_KEYS = {}
    settings.SECRET_KEY = "the-old-stack"
    needed = {"m0": master_key_fingerprint("m0")}
    settings.SECRET_KEY = "a-new-stack"
    [problem] = master_keys_missing(needed)
    assert "set the same DJANGO_SECRET_KEY" in problem
    settings.SECRET_KEY = "the-old-stack"
    assert master_keys_missing(needed) == []


def test_keys_the_old_stack_lacked_too_are_not_held_against_this_one(settings):
    settings.MEDIA_MASTER_KEYS = {"m1": KEY_A}
    assert master_keys_missing({"m9": None}) == []
