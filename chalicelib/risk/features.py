"""The credit model's inputs, defined once for training (`models/train.py`) and for scoring.

Pure Python (stdlib only). Training builds every row of the data set with `model_inputs`, and
the scorer builds every application with `features_from_application` -> `model_inputs`, so the
two can never compute a feature differently. The model card (`model_card.json`) lists the same
names, units and encodings; the scorer refuses a card that disagrees with this module.

Money enters the model in CNY (fen / 100). Ratios are unit-free. Missing numbers are NaN,
a missing or unknown category is -1 (the model treats both as "missing", as LightGBM did).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

FEN_PER_CNY = 100
MISSING_CODE = -1
NAN = float("nan")
# Ratios to income divide by at least this much (CNY a month): an income of 0 then gives the
# largest ratios, never a "missing" ratio, so declaring no income can never score better than
# declaring a little (the model's learned missing slot would otherwise decide).
INCOME_FLOOR_CNY = 1.0

# Order matters: it is the column order of the ONNX inputs `numeric` and `categorical`.
# No personal characteristic is an input: age only decides eligibility (policy, 18-65) and
# marital status is accepted by the API but never read (contract, "Reasons").
NUMERIC_FEATURES: tuple[str, ...] = (
    "job_seniority_years",    # years in the current job
    "term_months",            # requested term
    "has_records",            # 1.0 if the applicant has past arrears records, else 0.0
    "monthly_expenses_cny",
    "monthly_income_cny",
    "assets_cny",
    "debt_cny",
    "amount_cny",             # requested amount
    "installment_to_income",  # (amount / term) / max(income, floor)
    "expenses_to_income",     # expenses / max(income, floor)
    "amount_to_income",       # amount / max(income, floor) (months of income borrowed)
    "free_income_cny",        # income - expenses - amount / term (per month)
    "net_assets_cny",         # assets - debt
    "debt_to_income",         # debt / max(income, floor)
)
CATEGORIES: dict[str, tuple[str, ...]] = {
    "home": ("owner", "rent", "parents", "priv", "other"),
    "job_type": ("fixed", "freelance", "partime", "others"),
}
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(CATEGORIES)
FEATURES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES
# Characteristics of the person, never a model input nor a reason (a test holds every model
# card, current and challenger, to it). Retired models that used them only replay old decisions.
PERSONAL_CHARACTERISTICS: frozenset[str] = frozenset({"age_years", "marital_status"})

# The inputs of models that decided before (credit-additive-gbm 1.0.0 and 1.1.0): their stored
# decisions hold rows in this layout, and replaying them needs the names of the columns.
SCHEMA_1_NUMERIC: tuple[str, ...] = (
    "job_seniority_years", "term_months", "age_years", "has_records", "monthly_expenses_cny",
    "monthly_income_cny", "assets_cny", "debt_cny", "amount_cny", "installment_to_income",
    "expenses_to_income", "amount_to_income", "free_income_cny", "net_assets_cny",
    "debt_to_income")
SCHEMA_1_CATEGORIES: dict[str, tuple[str, ...]] = {
    "home": ("owner", "rent", "parents", "priv", "other"),
    "marital_status": ("single", "married", "widow", "separated", "divorced"),
    "job_type": ("fixed", "freelance", "partime", "others"),
}
# Every input layout a packaged model may have: (numeric columns, categories).
SCHEMAS: tuple[tuple[tuple[str, ...], dict[str, tuple[str, ...]]], ...] = (
    (NUMERIC_FEATURES, CATEGORIES), (SCHEMA_1_NUMERIC, SCHEMA_1_CATEGORIES))


@dataclass(frozen=True)
class ModelInputs:
    """One row of the model's two inputs: floats (NaN = missing) and category codes (-1)."""

    numeric: tuple[float, ...]
    categorical: tuple[int, ...]

    def as_dict(self) -> dict[str, float | int | None]:
        """Named values as scored, JSON-safe (NaN -> None), for the stored decision."""
        named: dict[str, float | int | None] = {
            name: (None if math.isnan(value) else value)
            for name, value in zip(NUMERIC_FEATURES, self.numeric)}
        named.update(zip(CATEGORICAL_FEATURES, self.categorical))
        return named

    @classmethod
    def from_dict(cls, named: Mapping[str, Any]) -> "ModelInputs":
        """The inverse of `as_dict` (replaying a stored decision)."""
        numeric = tuple(NAN if named[n] is None else float(named[n]) for n in NUMERIC_FEATURES)
        categorical = tuple(int(named[n]) for n in CATEGORICAL_FEATURES)
        return cls(numeric, categorical)


def _num(value: float | int | None) -> float:
    if value is None:
        return NAN
    return float(value)


def _ratio(numerator: float, income: float) -> float:
    """A ratio to income. Income below INCOME_FLOOR_CNY (0 included) counts as the floor, so the
    ratio only grows as income falls; only an unknown income (training data) makes it missing."""
    if math.isnan(numerator) or math.isnan(income):
        return NAN
    return numerator / max(income, INCOME_FLOOR_CNY)


def category_code(feature: str, value: str | None) -> int:
    """The documented integer of a category; None is missing (-1); anything else is an error."""
    if value is None:
        return MISSING_CODE
    try:
        return CATEGORIES[feature].index(value)
    except ValueError:
        raise ValueError(f"{feature}: unknown value {value!r}") from None


def model_inputs(*, job_seniority_years: float | None, term_months: float,
                 has_records: bool | None, monthly_expenses_cny: float | None,
                 monthly_income_cny: float | None, assets_cny: float | None, debt_cny: float | None,
                 amount_cny: float, home: str | None, job_type: str | None) -> ModelInputs:
    """The model's row from base quantities (money in CNY). Training and scoring both call this."""
    # Income the applicant did not state counts as no income (the API requires one; in the
    # training data an unknown income has the highest bad rate of all, 57 %).
    income = 0.0 if monthly_income_cny is None else float(monthly_income_cny)
    expenses = _num(monthly_expenses_cny)
    assets = _num(assets_cny)
    debt = _num(debt_cny)
    amount = float(amount_cny)
    term = float(term_months)
    installment = amount / term
    numeric = (
        _num(job_seniority_years),
        term,
        NAN if has_records is None else (1.0 if has_records else 0.0),
        expenses,
        income,
        assets,
        debt,
        amount,
        _ratio(installment, income),
        _ratio(expenses, income),
        _ratio(amount, income),
        income - expenses - installment,  # NaN when either is missing
        assets - debt,
        _ratio(debt, income),
    )
    categorical = (category_code("home", home), category_code("job_type", job_type))
    return ModelInputs(numeric, categorical)


def _fen(applicant: Mapping[str, Any], key: str) -> int:
    value = applicant[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer number of fen")
    return value


def features_from_application(applicant: Mapping[str, Any], amount: int, term_months: int,
                              has_records: bool) -> ModelInputs:
    """Map the API's applicant (fen, enums) and the application to the model's inputs.

    `has_records`: the API has no such field; the service passes whether this borrower ever had
    a loan overdue with us (the data set's "Records" is past arrears records). Age and
    `marital_status` are not inputs (see PERSONAL_CHARACTERISTICS). See the model card for units
    and the data set's scaling.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("amount must be a positive integer number of fen")
    if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months <= 0:
        raise ValueError("term_months must be a positive integer")
    seniority = applicant["job_seniority_years"]
    if isinstance(seniority, bool) or not isinstance(seniority, (int, float)) or seniority < 0:
        raise ValueError("job_seniority_years must be a non-negative number")
    return model_inputs(
        job_seniority_years=float(seniority),
        term_months=term_months,
        has_records=bool(has_records),
        monthly_expenses_cny=_fen(applicant, "monthly_expenses") / FEN_PER_CNY,
        monthly_income_cny=_fen(applicant, "monthly_income") / FEN_PER_CNY,
        assets_cny=_fen(applicant, "assets") / FEN_PER_CNY,
        debt_cny=_fen(applicant, "debt") / FEN_PER_CNY,
        amount_cny=amount / FEN_PER_CNY,
        home=applicant["home"],
        job_type=applicant["job_type"],
    )
