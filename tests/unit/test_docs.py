"""docs/ is enough for a client developer and cannot drift from the code.

Given the route registry, the message catalog and the money engine, the generated parts of
docs/ are what `make docs` writes today, every error code the API can answer is documented with
what to do and a Chinese message, the worked money examples hold the contract's rules, and the
README stands alone (it never sends a reader to files a clone does not have).
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib.core.errors import LendingError
from chalicelib.core.messages import ZH
from chalicelib.money.engine import schedule_items
from infra import docs

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(docs.BLOCKS))
def test_the_generated_parts_of_the_docs_are_current(name):
    text = (docs.DOCS / name).read_text(encoding="utf-8")
    assert docs.render(text, docs.BLOCKS[name]) == text, f"docs/{name} is stale: run `make docs`"


def test_every_code_the_api_answers_is_in_the_guide_with_advice_and_chinese():
    codes = docs.api_error_codes()
    guide = (docs.DOCS / "API.md").read_text(encoding="utf-8")
    assert {"NOT_FOUND", "METHOD_NOT_ALLOWED", "PHONE_INVALID", "OVERPAYMENT", "TOKEN_EXPIRED"} <= set(codes)
    for code in codes:
        assert code in docs.ADVICE, f"{code}: say what a client should do (infra/docs.py ADVICE)"
        assert code in ZH, f"{code}: give its Chinese message (chalicelib/core/messages.py ZH)"
        assert re.search(rf"\| `{code}` \|", guide), f"{code} is missing from docs/API.md"


def _raised_codes() -> set[str]:
    """Codes given at raise sites (`code="X"`) and by LendingError subclasses, across chalicelib."""
    found = set()
    for path in (ROOT / "chalicelib").rglob("*.py"):
        found.update(re.findall(r'\bcode="([A-Z][A-Z0-9_]+)"', path.read_text(encoding="utf-8")))
    pending = [LendingError]
    while pending:
        cls = pending.pop()
        found.add(cls.code)
        pending.extend(cls.__subclasses__())
    return found - {"JOB_INCOMPLETE"}  # a scheduled job's failure, never an HTTP answer


def test_every_code_raised_anywhere_has_a_chinese_message():
    import app  # noqa: F401 - imports every slice, so every LendingError subclass exists
    missing = sorted(code for code in _raised_codes() if code not in ZH)
    assert not missing, f"add Chinese messages to chalicelib/core/messages.py ZH: {missing}"


def test_the_worked_examples_follow_the_money_rules():
    ex = docs.money_examples()
    daily = docs.PRINCIPAL * docs.APR / 365  # 500 fen a day on the whole principal
    # 等额本息 paid 5 days early: interest of the 26 days only, then the principal; paid.
    early = ex["equal_installment"]
    days = (early["on"] - docs.DISBURSED).days
    assert early["allocation"]["interest"] == round(daily * days) == 13_000
    after = schedule_items(early["after"])
    assert after[0]["status"] == "paid" and after[0]["interest"] == 13_000
    assert [i["due_date"] for i in after] == [i["due_date"] for i in schedule_items(early["before"])]
    assert sum(i["principal"] for i in after) == docs.PRINCIPAL
    # the second installment's days now run from the early payment (33 days on what is left)
    left = early["after"].outstanding_principal
    assert after[1]["interest"] == int((left * docs.APR * 33 / 365).quantize(Decimal(1), "ROUND_HALF_UP"))
    # 等额本金 paid on D+3: penalty for D+1 and D+2 at min(1.5 x apr, 24 %) / 365 a day
    late = ex["equal_principal"]
    principal = schedule_items(late["before"])[0]["principal"]
    per_day = int((principal * Decimal("0.24") / 365).quantize(Decimal(1), "ROUND_HALF_UP"))
    assert late["allocation"]["penalty"] == 2 * per_day == 220
    assert schedule_items(late["overdue"])[0]["status"] == "overdue"
    assert schedule_items(late["after"])[0]["status"] == "paid"
    # 先息后本: the payoff after the prepayment is the principal plus 4 days of interest on it
    payoff = ex["interest_first"]["payoff"]
    assert payoff == {"amount": 501_000, "principal": 500_000, "interest": 1_000, "penalty": 0}
    assert ex["interest_first"]["closed"]


def test_the_money_page_shows_the_engines_numbers():
    page = (docs.DOCS / "MONEY.md").read_text(encoding="utf-8")
    for text in ("13,000 fen (¥130.00)", "220 fen (¥2.20)", "501,000 fen (¥5,010.00)",
                 "| 1 | 2027-02-10 | 160,150 | 15,500 | 0 | 175,650 | 0 | pending |"):
        assert text in page


def test_the_readme_and_docs_stand_alone():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in readme and "CONTRACT.md" not in readme
    for page in [ROOT / "README.md", *sorted(docs.DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which is not there"
    for topic in ("about a minute", "ops key is a new one", "MOTO_PORT=5100 make jobs", "emptied"):
        assert topic in readme, topic
