from chalicelib.core.pii import mask_card, mask_id_number, mask_phone, mask_text


def test_phone_is_masked_like_the_contract():
    assert mask_phone("13812348000") == "138****8000"
    assert mask_phone("+8613812348000") == "138****8000"


def test_id_number_keeps_first_and_last_four():
    assert mask_id_number("110101199003071234") == "1101**********1234"


def test_card_shows_last_four_only():
    assert mask_card("6222021234567890123") == "0123"


def test_numbers_typed_into_free_text_are_masked_and_the_rest_kept():
    note = "已致电13812348000核实，身份证11010119900307123X，卡号6222020000000001234，额度500000"
    assert mask_text(note) == ("已致电138****8000核实，身份证1101**********123X，卡号****1234，"
                               "额度500000")
