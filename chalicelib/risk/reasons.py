"""Reason codes: stable codes and plain messages (English and Chinese) for every decision.

Codes are part of the API (clients and operators key on them): never rename one; add new ones.
Model reasons name the features whose exact contribution pushed the assessed risk up, largest
first; rule reasons name the rule that declined or held the application.

No reason names a personal characteristic (contract, "Reasons"): age appears only as the
eligibility rule (AGE_NOT_ELIGIBLE), marital status never. Models before 2.0.0 took both as
inputs and their decisions (policy-1.0.0) said so; those two codes live on in
RETIRED_FEATURE_REASONS only so that such a decision can be replayed exactly, and a borrower
never sees them again (`shown`).
"""
from __future__ import annotations

from typing import Iterable, Mapping

from chalicelib.risk.features import FEATURES, PERSONAL_CHARACTERISTICS

# feature -> (code, English, Chinese)
FEATURE_REASONS: dict[str, tuple[str, str, str]] = {
    "job_seniority_years": ("RISK_JOB_SENIORITY", "Your time in your current job raised the assessed risk.",
                            "当前工作年限提高了评估风险。"),
    "term_months": ("RISK_LOAN_TERM", "The loan term you asked for raised the assessed risk.",
                    "申请的借款期限提高了评估风险。"),
    "has_records": ("RISK_PAST_OVERDUE", "A past overdue repayment with us raised the assessed risk.",
                    "您在本平台的历史逾期记录提高了评估风险。"),
    "monthly_expenses_cny": ("RISK_EXPENSES", "Your monthly expenses raised the assessed risk.",
                             "每月支出提高了评估风险。"),
    "monthly_income_cny": ("RISK_INCOME", "Your monthly income raised the assessed risk.",
                           "月收入水平提高了评估风险。"),
    "assets_cny": ("RISK_ASSETS", "Your declared assets raised the assessed risk.",
                   "申报的资产情况提高了评估风险。"),
    "debt_cny": ("RISK_DEBT", "Your existing debt raised the assessed risk.", "现有负债提高了评估风险。"),
    "amount_cny": ("RISK_AMOUNT", "The amount you asked for raised the assessed risk.",
                   "申请金额提高了评估风险。"),
    "installment_to_income": ("RISK_INSTALLMENT_TO_INCOME",
                              "The monthly repayment is high compared with your income.",
                              "月还款额相对于收入偏高。"),
    "expenses_to_income": ("RISK_EXPENSES_TO_INCOME", "Your expenses are high compared with your income.",
                           "支出相对于收入偏高。"),
    "amount_to_income": ("RISK_AMOUNT_TO_INCOME", "The amount is high compared with your income.",
                         "申请金额相对于收入偏高。"),
    "free_income_cny": ("RISK_FREE_INCOME",
                        "Too little income is left each month after expenses and the repayment.",
                        "扣除支出和还款后每月可支配收入偏少。"),
    "net_assets_cny": ("RISK_NET_ASSETS", "Your assets net of debt raised the assessed risk.",
                       "扣除负债后的净资产情况提高了评估风险。"),
    "debt_to_income": ("RISK_DEBT_TO_INCOME", "Your debt is high compared with your income.",
                       "负债相对于收入偏高。"),
    "home": ("RISK_HOME", "Your housing situation raised the assessed risk.", "居住情况提高了评估风险。"),
    "job_type": ("RISK_JOB_TYPE", "Your type of employment raised the assessed risk.",
                 "就业类型提高了评估风险。"),
}
assert set(FEATURE_REASONS) == set(FEATURES), "every model feature needs a reason code"
assert not set(FEATURE_REASONS) & PERSONAL_CHARACTERISTICS, "no reason names a personal characteristic"

# feature -> (English, Chinese) when it lowered the assessed risk: the credit report's "helps"
# factors, under the same code as the reason it gives when it raised the risk.
FEATURE_HELPS: dict[str, tuple[str, str]] = {
    "job_seniority_years": ("Your time in your current job lowered the assessed risk.", "当前工作年限降低了评估风险。"),
    "term_months": ("The loan term you asked for lowered the assessed risk.", "申请的借款期限降低了评估风险。"),
    "has_records": ("Your repayment record with us lowered the assessed risk.", "您在本平台的还款记录降低了评估风险。"),
    "monthly_expenses_cny": ("Your monthly expenses lowered the assessed risk.", "每月支出情况降低了评估风险。"),
    "monthly_income_cny": ("Your monthly income lowered the assessed risk.", "月收入水平降低了评估风险。"),
    "assets_cny": ("Your declared assets lowered the assessed risk.", "申报的资产情况降低了评估风险。"),
    "debt_cny": ("Your existing debt is low, which lowered the assessed risk.", "现有负债较低，降低了评估风险。"),
    "amount_cny": ("The amount you asked for lowered the assessed risk.", "申请金额降低了评估风险。"),
    "installment_to_income": ("The monthly repayment is moderate compared with your income.",
                              "月还款额相对于收入适中。"),
    "expenses_to_income": ("Your expenses are moderate compared with your income.", "支出相对于收入适中。"),
    "amount_to_income": ("The amount is moderate compared with your income.", "申请金额相对于收入适中。"),
    "free_income_cny": ("Enough income is left each month after expenses and the repayment.",
                        "扣除支出和还款后每月可支配收入充足。"),
    "net_assets_cny": ("Your assets net of debt lowered the assessed risk.", "扣除负债后的净资产情况降低了评估风险。"),
    "debt_to_income": ("Your debt is moderate compared with your income.", "负债相对于收入适中。"),
    "home": ("Your housing situation lowered the assessed risk.", "居住情况降低了评估风险。"),
    "job_type": ("Your type of employment lowered the assessed risk.", "就业类型降低了评估风险。"),
}
assert set(FEATURE_HELPS) == set(FEATURE_REASONS), "every model feature can help as well as hurt"

# Only for replaying decisions of policy-1.0.0 (models 1.0.0 and 1.1.0), never for a new one.
RETIRED_FEATURE_REASONS: dict[str, tuple[str, str, str]] = {
    "age_years": ("RISK_AGE", "Your age group raised the assessed risk.", "年龄段提高了评估风险。"),
    "marital_status": ("RISK_MARITAL_STATUS", "Your marital status raised the assessed risk.",
                       "婚姻状况提高了评估风险。"),
}
RETIRED_CODES = frozenset(code for code, _, _ in RETIRED_FEATURE_REASONS.values())
FEATURE_CODES = frozenset(code for code, _, _ in FEATURE_REASONS.values()) | RETIRED_CODES

# rule code -> (English, Chinese)
RULE_REASONS: dict[str, tuple[str, str]] = {
    "IDENTITY_NOT_VERIFIED": ("Verify your identity before applying.", "请先完成实名认证再申请。"),
    "AGE_NOT_ELIGIBLE": ("Applicants must be 18 to 65 years old.", "申请人年龄须在18至65周岁之间。"),
    "LOAN_OVERDUE": ("You have a loan that is overdue; repay it before applying again.",
                     "您有逾期未还的借款，请还清后再申请。"),
    "TOO_MANY_ACTIVE_LOANS": ("You already have the most loans we allow at one time.",
                              "您当前在贷笔数已达上限。"),
    "DEBT_TO_INCOME_EXCEEDED": ("Your total borrowing would exceed one third of your annual income.",
                                "借款后您的总借款本金将超过年收入的三分之一。"),
    "TOTAL_DEBT_CAP_EXCEEDED": ("Your total borrowing would exceed 200,000 CNY.",
                                "借款后您的总借款本金将超过20万元。"),
    "REAPPLY_COOL_DOWN": ("You were declined for this product recently; please apply again later.",
                          "您近期申请该产品未获通过，请在冷静期结束后再申请。"),
    "INSUFFICIENT_CREDIT_CAPACITY": ("The credit we could offer is below this product's minimum amount.",
                                     "可授予的额度低于该产品的最低借款金额。"),
    "APR_CAP_EXCEEDED": ("This product cannot be offered within the legal rate cap.",
                         "该产品利率无法满足年化利率上限要求。"),
    "RISK_GRADE_DECLINE": ("Our risk assessment does not allow credit at this time.",
                           "综合风险评估未通过。"),
    "MANUAL_REVIEW": ("Your application needs a review by our staff.", "您的申请需要人工审核。"),
    "MODEL_UNAVAILABLE": ("Automatic assessment is unavailable; your application will be reviewed.",
                          "自动评估暂不可用，您的申请将转人工审核。"),
    "LIMIT_REDUCED": ("Approved with a credit limit lower than the amount you asked for.",
                      "已批准，但授信额度低于申请金额。"),
    # Not the model's: the credit line's rule that a limit is raised at most once in 30 days.
    "LIMIT_INCREASE_TOO_SOON": ("Approved, but your credit limit was set or raised less than 30 days "
                                "ago, so it stays as it is for now.",
                                "已批准，但您的额度在30天内刚开通或提升过，本次暂不提额。"),
    # An operator's decision, in the same words for everyone: the operator's note stays internal.
    "OPERATOR_APPROVED": ("Our staff reviewed your application and approved it.",
                          "您的申请已通过人工审核。"),
    "OPERATOR_DECLINED": ("Our staff reviewed your application and could not approve it.",
                          "您的申请经人工审核未获通过。"),
}

LANGUAGES = ("en", "zh")


def _pick(en: str, zh: str, lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}")
    return zh if lang == "zh" else en


def rule_reason(code: str, lang: str = "en") -> dict[str, str]:
    en, zh = RULE_REASONS[code]
    return {"code": code, "message": _pick(en, zh, lang)}


def feature_reason(feature: str, lang: str = "en", *, replaying: bool = False) -> dict[str, str]:
    """A feature's reason. `replaying` also knows the retired personal-characteristic reasons
    (a policy-1.0.0 decision made by an old model); a new decision never gets one."""
    table = {**FEATURE_REASONS, **RETIRED_FEATURE_REASONS} if replaying else FEATURE_REASONS
    code, en, zh = table[feature]
    return {"code": code, "message": _pick(en, zh, lang)}


def localise(shown: Iterable[Mapping[str, str]], lang: str) -> list[dict[str, str]]:
    """Stored reasons in the reader's language: a known code gets its message in `lang`; any
    other reason is shown as it was stored."""
    by_code = {code: (en, zh) for code, (en, zh) in RULE_REASONS.items()}
    by_code.update({code: (en, zh) for code, en, zh in FEATURE_REASONS.values()})
    out = []
    for reason in shown:
        known = by_code.get(reason["code"])
        out.append({"code": reason["code"],
                    "message": _pick(*known, lang) if known else reason["message"]})
    return out


def top_risk_features(contributions: Mapping[str, float], limit: int = 3,
                      personal: bool = False) -> list[str]:
    """Features whose contribution raised the log-odds of default, largest first (ties by name).
    A personal characteristic is never one (`personal=True` only to replay an old decision)."""
    up = [(value, name) for name, value in contributions.items()
          if value > 0 and (personal or name not in PERSONAL_CHARACTERISTICS)]
    up.sort(key=lambda item: (-item[0], item[1]))
    return [name for _, name in up[:limit]]


def model_reasons(contributions: Mapping[str, float], limit: int = 3, lang: str = "en", *,
                  replaying: bool = False) -> list[dict[str, str]]:
    return [feature_reason(name, lang, replaying=replaying)
            for name in top_risk_features(contributions, limit, personal=replaying)]


def factors(contributions: Mapping[str, float], lang: str = "en",
            limit: int = 3) -> list[dict[str, str]]:
    """The credit report's factors of one decision: the features that raised the risk most
    (the decision's own reasons, same codes and words), then those that lowered it most. Only
    today's features: never a personal characteristic, whenever the decision was made."""
    hurts = [name for name in top_risk_features(contributions, limit) if name in FEATURE_REASONS]
    down = sorted((value, name) for name, value in contributions.items()
                  if value < 0 and name in FEATURE_REASONS)
    out = [{**feature_reason(name, lang), "direction": "hurts"} for name in hurts]
    out += [{"code": FEATURE_REASONS[name][0], "message": _pick(*FEATURE_HELPS[name], lang),
             "direction": "helps"} for _, name in down[:limit]]
    return out


def shown(status: str, stored: Iterable[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """What a borrower is shown of a stored decision's reasons, whenever it was made: never a
    reason naming a personal characteristic, and no risk reason on an approval (decisions of
    policy-1.0.0 stored both; the record keeps them, the borrower no longer sees them)."""
    out = []
    for reason in stored:
        if reason["code"] in RETIRED_CODES:
            continue
        if status == "approved" and reason["code"] in FEATURE_CODES:
            continue
        out.append(reason)
    return out


def all_codes() -> Iterable[str]:
    yield from RULE_REASONS
    for code, _, _ in FEATURE_REASONS.values():
        yield code
