"""Debit cards: number checks and the issuing bank from the card's BIN.

Loans are paid out to, and repaid from, a debit card (借记卡) in the borrower's name; credit
cards are refused. `DEBIT_BINS` lists common debit-card BINs of the major Chinese banks; a
card whose BIN is not listed is refused as CARD_INVALID ("not a supported debit card") rather
than guessed at. Extend the table when a bank issues new ranges.
"""
from __future__ import annotations

import re

from stdnum import luhn
from stdnum.exceptions import ValidationError

from chalicelib.core.errors import RuleViolation

ICBC, CCB, ABC, BOC = "中国工商银行", "中国建设银行", "中国农业银行", "中国银行"
BOCOM, CMB, PSBC, CITIC = "交通银行", "招商银行", "中国邮政储蓄银行", "中信银行"
CEB, CMBC, SPDB, CIB = "中国光大银行", "中国民生银行", "上海浦东发展银行", "兴业银行"
PINGAN, HXB, CGB = "平安银行", "华夏银行", "广发银行"

DEBIT_BINS: dict[str, str] = {
    **dict.fromkeys(("622202", "622208", "621226", "621225", "621558", "621559", "621281",
                     "622200"), ICBC),
    **dict.fromkeys(("621700", "622700", "436742", "622280", "621284", "621081", "621467",
                     "621598"), CCB),
    **dict.fromkeys(("622848", "622845", "622846", "622849", "622823", "622826", "621282",
                     "621336"), ABC),
    **dict.fromkeys(("621661", "621663", "621666", "621668", "621660", "621256", "621785",
                     "621786", "621787", "621788", "456351", "601382"), BOC),
    **dict.fromkeys(("622260", "622262", "601428", "405512", "621069"), BOCOM),
    **dict.fromkeys(("621483", "621485", "621486", "622588", "622580", "410062", "621286"), CMB),
    **dict.fromkeys(("621098", "622188", "622150", "622151", "621799", "621095"), PSBC),
    **dict.fromkeys(("622690", "622691", "622692", "622696", "622698", "621771"), CITIC),
    **dict.fromkeys(("622660", "622662", "622663", "622664", "622665", "622666", "622667",
                     "622668", "622669", "622670", "622671", "622672", "622673", "622674"), CEB),
    **dict.fromkeys(("622615", "622617", "622618", "622622", "621691", "415599"), CMBC),
    **dict.fromkeys(("622521", "622522", "622523", "621792", "621793"), SPDB),
    **dict.fromkeys(("622909", "622908"), CIB),
    **dict.fromkeys(("622298", "622986", "622989", "621626"), PINGAN),
    **dict.fromkeys(("622630", "622631", "622632", "622633"), HXB),
    **dict.fromkeys(("622568", "621462"), CGB),
}

# 16 to 19 ASCII digits; a single space or dash may separate any two (as an app groups them).
CARD_PATTERN = r"^[0-9](?:[ -]?[0-9]){15,18}$"
_CARD = re.compile(CARD_PATTERN)


def normalise_card(raw: str) -> str:
    """Digits only (the spaces and dashes between groups dropped); "" when not a card number."""
    return re.sub(r"[ -]", "", raw) if isinstance(raw, str) and _CARD.fullmatch(raw) else ""


def bank_for(number: str) -> str | None:
    for length in (8, 7, 6, 5):
        found = DEBIT_BINS.get(number[:length])
        if found:
            return found
    return None


def check_debit_card(raw: str) -> tuple[str, str]:
    """(card number, bank name) of a well-formed, Luhn-valid debit card of a listed bank;
    otherwise 422 CARD_INVALID."""
    number = normalise_card(raw)
    if not number:
        raise RuleViolation("A bank card number has 16 to 19 digits.", code="CARD_INVALID")
    try:
        luhn.validate(number)
    except ValidationError:
        raise RuleViolation("This card number is not valid; check the digits.",
                            code="CARD_INVALID") from None
    bank = bank_for(number)
    if bank is None:
        raise RuleViolation("Only debit cards (借记卡) of the supported banks can be added.",
                            code="CARD_INVALID")
    return number, bank
