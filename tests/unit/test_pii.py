from chalicelib.core.pii import mask_card, mask_id_number, mask_phone


def test_phone_is_masked_like_the_contract():
    assert mask_phone("13812348000") == "138****8000"
    assert mask_phone("+8613812348000") == "138****8000"


def test_id_number_keeps_first_and_last_four():
    assert mask_id_number("110101199003071234") == "1101**********1234"


def test_card_shows_last_four_only():
    assert mask_card("6222021234567890123") == "0123"
