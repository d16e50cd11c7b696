"""The monotonicity sweep: raise one API field at a time and watch the probability of default.

A lender must be able to defend every direction (issue 15): more income, assets or years in
the job never raise the risk; more expenses, debt, a larger amount or a past overdue record
never lower it. An applicant must not be able to buy an approval by asking for more or by
declaring more expenses.

For each base applicant (API fields, as a borrower sends them) and each field below, the
field runs over an increasing grid (other fields fixed); every application goes through the
same mapping as production (`chalicelib.risk.features.features_from_application`) and the
model; one step where the probability moves against the field's direction is a violation.
Used by `models/train.py` (every row of the data set as a base, the card records the result)
and by `tests/unit/test_risk_monotonicity.py` (through the packaged artifact and the scorer).

Why it holds, not only where it was sampled: the model is additive (one feature per tree), each
feature's step function is monotone where the card says so (checked on every step at export),
and each model input moves in one direction with each API field (`input_directions`, checked by
the test), so the sum moves one way too.

Standard library + chalicelib only (the tests run it without the training packages).
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Iterable, Sequence

from chalicelib.risk import features as F

# API field -> +1 if risk may only rise as it grows, -1 if it may only fall.
FIELDS: dict[str, int] = {
    "monthly_income": -1, "assets": -1, "job_seniority_years": -1,
    "monthly_expenses": 1, "debt": 1, "amount": 1, "has_records": 1,
}
APPLICANT_FIELDS = ("monthly_income", "monthly_expenses", "assets", "debt", "job_seniority_years")
MONEY_FIELDS = ("monthly_income", "monthly_expenses", "assets", "debt", "amount")
TOLERANCE = 1e-12


def _geometric(low: float, high: float, n: int) -> list[int]:
    ratio = (high / low) ** (1 / (n - 1))
    return [int(round(low * ratio ** i)) for i in range(n)]


def grid(field: str, base_value: int | float | bool, points: int = 90) -> list:
    """Increasing values of `field` (fen for money), dense around the base value."""
    if field == "has_records":
        return [False, True]
    if field == "job_seniority_years":
        return list(range(0, 61))
    low = 1 if field == "amount" else 0
    values = {low, 1, 99, 100, 101} | set(_geometric(100, 10**9, points))
    if base_value:
        values |= {max(low, int(base_value * (1 + k / 50))) for k in range(-25, 26)}
    return sorted(v for v in values if v >= low)


def application(base: dict, field: str, value: Any) -> F.ModelInputs:
    applicant = dict(base["applicant"])
    amount, has_records = base["amount"], base["has_records"]
    if field in APPLICANT_FIELDS:
        applicant[field] = value
    elif field == "amount":
        amount = value
    elif field == "has_records":
        has_records = value
    return F.features_from_application(applicant, amount, base["term_months"], has_records)


def base_value(base: dict, field: str) -> Any:
    if field in APPLICANT_FIELDS:
        return base["applicant"][field]
    return base[field]


def sweep(score_many: Callable[[list[F.ModelInputs]], Sequence[float]], bases: Iterable[dict],
          fields: dict[str, int] = FIELDS, points: int = 90, keep: int = 5) -> dict:
    """Every field of every base over its grid; returns counts and the first violations."""
    checked = violations = applicants = 0
    worst = 0.0
    examples: list[dict] = []
    per_field = {f: {"steps": 0, "violations": 0} for f in fields}
    for base in bases:
        applicants += 1
        for field, direction in fields.items():
            values = grid(field, base_value(base, field), points)
            probabilities = score_many([application(base, field, v) for v in values])
            for i in range(len(values) - 1):
                move = (probabilities[i + 1] - probabilities[i]) * direction
                checked += 1
                per_field[field]["steps"] += 1
                if move < -TOLERANCE:
                    violations += 1
                    per_field[field]["violations"] += 1
                    worst = max(worst, -move)
                    if len(examples) < keep:
                        examples.append({"field": field, "from": values[i], "to": values[i + 1],
                                         "p_from": probabilities[i], "p_to": probabilities[i + 1],
                                         "base": base})
    return {"base_applicants": applicants, "fields": dict(fields), "steps_checked": checked,
            "violations": violations, "largest_adverse_move": worst, "per_field": per_field,
            "examples": examples}


def input_directions(base: dict, field: str, values: Sequence) -> dict[str, int]:
    """How each numeric model input moves as `field` runs over `values`: +1 never falls,
    -1 never rises, 0 constant, None both ways (then the sum could turn back)."""
    rows = [application(base, field, v).numeric for v in values]
    out: dict[str, int] = {}
    for j, name in enumerate(F.NUMERIC_FEATURES):
        ups = downs = False
        for a, b in zip(rows, rows[1:]):
            if math.isnan(a[j]) or math.isnan(b[j]):
                ups = downs = True
            elif b[j] > a[j]:
                ups = True
            elif b[j] < a[j]:
                downs = True
        out[name] = None if ups and downs else 1 if ups else -1 if downs else 0
    return out


def random_bases(n: int, seed: int = 15) -> list[dict]:
    """Applicants across the ranges the API accepts, plus the edges (no income, no assets)."""
    rng = random.Random(seed)
    homes = tuple(F.CATEGORIES["home"])
    jobs = tuple(F.CATEGORIES["job_type"])
    out = []
    for i in range(n):
        income = 0 if i % 10 == 0 else int(rng.lognormvariate(math.log(800_000), 0.7))
        out.append({
            "applicant": {"monthly_income": income,
                          "monthly_expenses": int(rng.uniform(0, 1.2) * max(income, 300_000)),
                          "assets": 0 if i % 4 == 0 else int(rng.lognormvariate(math.log(2e7), 1.2)),
                          "debt": 0 if i % 3 else int(rng.lognormvariate(math.log(5e6), 1.0)),
                          "job_type": rng.choice(jobs), "job_seniority_years": rng.randrange(0, 30),
                          "home": rng.choice(homes)},
            "amount": rng.randrange(50_000, 20_000_000, 100),
            "term_months": rng.choice([1, 3, 6, 9, 12, 18, 24, 36]),
            "has_records": i % 7 == 0})
    return out
