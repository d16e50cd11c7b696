"""The credit decision policy: pure, versioned, separate from the model.

Facts in (`PolicyInput`), the model's answer in (or None when the model is unavailable), a
`Decision` out. No I/O, no clock, no AWS: the same input always gives the same decision, so a
stored decision can be replayed. Money is integer fen; rates are `Decimal` then strings.

Order: hard rules first (identity, age, overdue, number of live loans, re-apply cool-down,
over-borrowing guards, the APR cap); every rule that fails adds its own reason code and the
application is declined without the model. Then the model's probability of default gives a
risk grade, and the grade gives the action, the credit limit and the APR. Without a model no
one is approved: the application goes to review.

Change any number or rule here -> bump POLICY_VERSION (decisions record the version they were
made by) and keep the older version's behaviour in `decide(version=...)`, so that every stored
decision still replays as it was made (REPLAYABLE_VERSIONS).

policy-1.1.0 (issue 15): an approval lists no risk reason (only LIMIT_REDUCED when it applies),
and no reason ever names a personal characteristic. policy-1.0.0 listed the model's reasons on
approvals too, including the age and marital-status reasons of the models of that time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any, Mapping, Protocol

from chalicelib.core.clock import shanghai_date
from chalicelib.money.fen import format_rate, parse_rate
from chalicelib.risk import reasons as R

POLICY_VERSION = "policy-1.1.0"
REPLAYABLE_VERSIONS = ("policy-1.0.0", "policy-1.1.0")

MIN_AGE, MAX_AGE = 18, 65
MAX_LIVE_LOANS = 3                  # a borrower already holding this many loans gets no more credit
COOL_DOWN_DAYS = 30                 # after a decline for the same product (Asia/Shanghai dates)
TOTAL_DEBT_CAP_FEN = 20_000_000     # 200,000 CNY of outstanding principal per person
INCOME_MONTHS_CAP = 4               # outstanding principal <= 1/3 of annual income = 4 months
LIMIT_STEP_FEN = 10_000             # credit limits are whole hundreds of CNY
MODEL_REASONS = 3                   # top features that pushed risk up, per decision

# Risk grade by probability of default: (grade, upper bound exclusive). These are the model
# card's suggested bounds (credit-additive-gbm 1.1.0 and 2.0.0); a test keeps the two in step.
GRADE_BANDS: tuple[tuple[str, float], ...] = (("A", 0.10), ("B", 0.20), ("C", 0.35), ("D", 0.55),
                                              ("E", float("inf")))
GRADE_ACTION = {"A": "approved", "B": "approved", "C": "approved", "D": "review", "E": "declined"}
# Credit limit as a share (percent) of the borrower's capacity (the over-borrowing caps).
GRADE_LIMIT_PERCENT = {"A": 100, "B": 60, "C": 30, "D": 30}
# APR position between the product's apr_min (0) and min(apr_max, cap) (1).
GRADE_APR_POSITION = {"A": Decimal(0), "B": Decimal(1) / 3, "C": Decimal(2) / 3, "D": Decimal(1)}

APPROVED, REVIEW, DECLINED = "approved", "review", "declined"


class ModelScore(Protocol):
    """What the policy needs from the model (chalicelib.risk.scorer.Score has it)."""
    probability: float
    contributions: Mapping[str, float]
    model_version: str
    model_sha256: str


@dataclass(frozen=True)
class ProductTerms:
    product_id: str
    min_amount: int      # fen
    max_amount: int      # fen
    apr_min: str         # decimal string
    apr_max: str


@dataclass(frozen=True)
class PolicyInput:
    """What the service knows when an application arrives."""
    product: ProductTerms
    requested_amount: int            # fen
    term_months: int
    monthly_income: int              # fen, as declared
    age: int | None                  # from the verified ID number
    identity_verified: bool
    outstanding_principal: int       # fen, of the borrower's live loans
    live_loans: int                  # scheduled, disbursing, active or overdue
    overdue_loans: int
    last_decline_on: date | None     # last decline for this product (Asia/Shanghai date)
    now: datetime                    # aware; the decision's time
    apr_cap: str = "0.24"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["last_decline_on"] = self.last_decline_on.isoformat() if self.last_decline_on else None
        data["now"] = self.now.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PolicyInput":
        values = dict(data)
        values["product"] = ProductTerms(**values["product"])
        values["last_decline_on"] = (date.fromisoformat(values["last_decline_on"])
                                     if values.get("last_decline_on") else None)
        values["now"] = datetime.fromisoformat(values["now"])
        return cls(**values)


@dataclass(frozen=True)
class Decision:
    status: str                       # approved | review | declined
    credit_limit: int                 # fen; 0 unless approved
    apr: str | None                   # decimal string; None unless approved
    reasons: list[dict[str, str]]     # [{code, message}]
    probability: float | None         # of default; None if the model was not consulted
    grade: str | None
    model_version: str | None
    model_sha256: str | None
    policy_version: str = POLICY_VERSION
    suggested_limit: int = 0          # what an approval would grant (for an operator's review)
    suggested_apr: str | None = None
    contributions: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def grade_of(probability: float) -> str:
    for grade, upper in GRADE_BANDS:
        if probability < upper:
            return grade
    return GRADE_BANDS[-1][0]


def capacity(inp: PolicyInput) -> int:
    """The most outstanding principal this borrower may carry (fen): both over-borrowing caps."""
    return min(inp.monthly_income * INCOME_MONTHS_CAP, TOTAL_DEBT_CAP_FEN)


def _apr_bounds(inp: PolicyInput) -> tuple[Decimal, Decimal]:
    low = parse_rate(inp.product.apr_min)
    high = min(parse_rate(inp.product.apr_max), parse_rate(inp.apr_cap))
    return low, high


def apr_for(grade: str, inp: PolicyInput) -> str:
    low, high = _apr_bounds(inp)
    rate = Decimal(format_rate(low + (high - low) * GRADE_APR_POSITION[grade]))
    if rate > high:  # rounding half up must never cross the cap
        rate = high.quantize(Decimal("0.0001"), rounding=ROUND_DOWN)
    return format_rate(rate)


def limit_for(grade: str, inp: PolicyInput) -> int:
    raw = capacity(inp) * GRADE_LIMIT_PERCENT[grade] // 100
    raw = min(raw, inp.product.max_amount)
    return raw // LIMIT_STEP_FEN * LIMIT_STEP_FEN


def hard_rule_failures(inp: PolicyInput) -> list[str]:
    """Codes of every rule that declines regardless of the model, in a fixed order."""
    failed = []
    if not inp.identity_verified:
        failed.append("IDENTITY_NOT_VERIFIED")
    if inp.age is None or not MIN_AGE <= inp.age <= MAX_AGE:
        failed.append("AGE_NOT_ELIGIBLE")
    if inp.overdue_loans > 0:
        failed.append("LOAN_OVERDUE")
    if inp.live_loans >= MAX_LIVE_LOANS:
        failed.append("TOO_MANY_ACTIVE_LOANS")
    if inp.last_decline_on is not None and \
            (shanghai_date(inp.now) - inp.last_decline_on).days < COOL_DOWN_DAYS:
        failed.append("REAPPLY_COOL_DOWN")
    total_after = inp.outstanding_principal + inp.requested_amount
    if total_after * 3 > inp.monthly_income * 12:   # exact: <= one third of annual income
        failed.append("DEBT_TO_INCOME_EXCEEDED")
    if total_after > TOTAL_DEBT_CAP_FEN:
        failed.append("TOTAL_DEBT_CAP_EXCEEDED")
    low, high = _apr_bounds(inp)
    if low > high:
        failed.append("APR_CAP_EXCEEDED")
    return failed


def decide(inp: PolicyInput, score: ModelScore | None, lang: str = "en",
           version: str = POLICY_VERSION) -> Decision:
    """The decision for one application. `score` is None when the model is unavailable.
    `version` is only for replaying a stored decision of an earlier policy."""
    if version not in REPLAYABLE_VERSIONS:
        raise ValueError(f"unknown policy version {version!r}")
    legacy = version == "policy-1.0.0"
    model = {"probability": None, "grade": None, "model_version": None, "model_sha256": None,
             "contributions": {}}
    if score is not None:
        model = {"probability": float(score.probability), "grade": grade_of(score.probability),
                 "model_version": score.model_version, "model_sha256": score.model_sha256,
                 "contributions": dict(score.contributions)}

    failed = hard_rule_failures(inp)
    if failed:
        return Decision(DECLINED, 0, None, [R.rule_reason(code, lang) for code in failed], **model,
                        policy_version=version)
    if score is None:
        return Decision(REVIEW, 0, None, [R.rule_reason("MODEL_UNAVAILABLE", lang)], **model,
                        policy_version=version)

    grade = model["grade"]
    # Adverse reasons: what pushed the risk up, most first; never a personal characteristic
    # (policy-1.0.0 replays its old models' reasons as they were given).
    why = R.model_reasons(score.contributions, MODEL_REASONS, lang, replaying=legacy)
    action = GRADE_ACTION[grade]
    if action == DECLINED:
        return Decision(DECLINED, 0, None, [R.rule_reason("RISK_GRADE_DECLINE", lang)] + why, **model,
                        policy_version=version)

    limit, apr = limit_for(grade, inp), apr_for(grade, inp)
    suggested = {"suggested_limit": limit, "suggested_apr": apr}
    if action == REVIEW:
        return Decision(REVIEW, 0, None, [R.rule_reason("MANUAL_REVIEW", lang)] + why,
                        **model, **suggested, policy_version=version)
    if limit - inp.outstanding_principal < inp.product.min_amount:
        return Decision(DECLINED, 0, None, [R.rule_reason("INSUFFICIENT_CREDIT_CAPACITY", lang)] + why,
                        **model, **suggested, policy_version=version)
    # An approval lists no risk reason (policy-1.1.0): only what the borrower should know.
    shown = why if legacy else []
    if limit < inp.outstanding_principal + inp.requested_amount:
        shown = [R.rule_reason("LIMIT_REDUCED", lang)] + shown
    return Decision(APPROVED, limit, apr, shown, **model, **suggested, policy_version=version)
