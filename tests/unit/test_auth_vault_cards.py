"""Personal data at rest (KMS envelope, keyed hashes) and debit-card checks."""
from __future__ import annotations

import hashlib
import json

import pytest

from chalicelib.auth import cards
from chalicelib.auth.pii_vault import SealBroken, keyed_hash, mask_name, seal, unseal
from chalicelib.auth.secret_store import forget
from chalicelib.adapters import aws
from chalicelib.core import config
from chalicelib.core.errors import RuleViolation
from tests.journeys import card_ending

ID = "110101199003071234"


def test_sealed_values_open_only_for_their_user_and_purpose(aws_stack):
    sealed = seal(ID, user_id="u-1", purpose="identity")
    assert ID not in sealed
    assert unseal(sealed, user_id="u-1", purpose="identity") == ID
    with pytest.raises(SealBroken):
        unseal(sealed, user_id="u-2", purpose="identity")  # moved onto another user's item
    with pytest.raises(SealBroken):
        unseal(sealed, user_id="u-1", purpose="card")


def _kms_decrypts(monkeypatch) -> list[dict]:
    """Count KMS Decrypt calls made through the app's client."""
    calls: list[dict] = []
    kms = aws.client("kms")
    real = kms.decrypt

    def counted(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)
    monkeypatch.setattr(kms, "decrypt", counted)
    return calls


def test_an_opened_data_key_is_reused_for_its_own_context_only(aws_stack, monkeypatch):
    from chalicelib.auth import pii_vault
    sealed = seal(ID, user_id="u-1", purpose="identity")
    pii_vault.clear_data_key_cache()
    calls = _kms_decrypts(monkeypatch)
    assert [unseal(sealed, user_id="u-1", purpose="identity") for _ in range(3)] == [ID] * 3
    assert len(calls) == 1
    with pytest.raises(SealBroken):  # the cached key does not open the value for another user
        unseal(sealed, user_id="u-2", purpose="identity")
    assert len(calls) == 2 and calls[-1]["EncryptionContext"] == {"user_id": "u-2", "purpose": "identity"}


def test_a_cached_data_key_expires(aws_stack, monkeypatch):
    from chalicelib.auth import pii_vault
    sealed = seal(ID, user_id="u-1", purpose="identity")
    calls = _kms_decrypts(monkeypatch)
    assert unseal(sealed, user_id="u-1", purpose="identity") == ID
    assert calls == []  # sealing just now left the key in the cache
    monkeypatch.setattr(pii_vault, "DATA_KEY_TTL_SECONDS", -1.0)
    assert unseal(sealed, user_id="u-1", purpose="identity") == ID
    assert len(calls) == 1


def test_the_data_key_cache_is_bounded(aws_stack, monkeypatch):
    from chalicelib.auth import pii_vault
    monkeypatch.setattr(pii_vault, "DATA_KEY_CACHE_SIZE", 3)
    pii_vault.clear_data_key_cache()
    for n in range(5):
        seal(ID, user_id=f"u-{n}", purpose="identity")
    assert len(pii_vault._data_keys) == 3


def test_each_seal_uses_a_fresh_data_key_and_nonce(aws_stack):
    assert seal(ID, user_id="u-1", purpose="identity") != seal(ID, user_id="u-1", purpose="identity")


def test_a_tampered_seal_does_not_open(aws_stack):
    version, blob, nonce, ciphertext = seal(ID, user_id="u-1", purpose="identity").split(":")
    flipped = ciphertext[:-4] + ("AAAA" if ciphertext[-4:] != "AAAA" else "BBBB")
    with pytest.raises(SealBroken):
        unseal(":".join([version, blob, nonce, flipped]), user_id="u-1", purpose="identity")


def test_lookup_hashes_are_keyed_not_plain_sha256(aws_stack):
    digest = keyed_hash("id_number", ID)
    assert digest != hashlib.sha256(ID.encode()).hexdigest()
    assert digest == keyed_hash("id_number", ID)
    assert digest != keyed_hash("phone", ID)  # kinds are kept apart
    # Another key gives another hash: without the key the hash cannot be recomputed.
    sm = aws.client("secretsmanager")
    sm.put_secret_value(SecretId=config.secret_name("hmac"), SecretString=json.dumps({"key": "f" * 64}))
    forget("hmac")
    assert keyed_hash("id_number", ID) != digest


@pytest.mark.parametrize("name, masked", [("张三", "*三"), ("欧阳娜娜", "***娜"), ("李", "*")])
def test_names_are_masked_to_their_last_character(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize("prefix, bank", [("622202", "中国工商银行"), ("621700", "中国建设银行"),
                                          ("622848", "中国农业银行"), ("621661", "中国银行"),
                                          ("622588", "招商银行"), ("622188", "中国邮政储蓄银行")])
def test_debit_cards_of_major_banks_are_recognised(prefix, bank):
    number = card_ending("4321", prefix=prefix)
    assert cards.check_debit_card(number) == (number, bank)


def test_spaces_and_dashes_between_groups_are_ignored():
    number = card_ending("4321")
    spaced = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    assert cards.check_debit_card(spaced)[0] == number


@pytest.mark.parametrize("raw", ["6222021234", "62220212345678901234", "6222abcd12345678901",
                                 ""])
def test_malformed_card_numbers_are_card_invalid(raw):
    with pytest.raises(RuleViolation) as caught:
        cards.check_debit_card(raw)
    assert caught.value.code == "CARD_INVALID" and caught.value.status == 422


def test_a_luhn_failure_is_card_invalid():
    good = card_ending("4321")
    bad = good[:-5] + str((int(good[-5]) + 1) % 10) + good[-4:]
    with pytest.raises(RuleViolation) as caught:
        cards.check_debit_card(bad)
    assert caught.value.code == "CARD_INVALID"


def test_a_card_of_no_listed_debit_bin_is_refused():
    with pytest.raises(RuleViolation) as caught:
        cards.check_debit_card(card_ending("4321", prefix="411111", length=16))  # a Visa test range
    assert caught.value.code == "CARD_INVALID"
