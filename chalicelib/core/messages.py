"""Error messages for people, in the language the client asks for.

The contract's decision reasons are Chinese unless the client sends `Accept-Language: en`;
error messages follow the same rule. The message a service raises is the English one (it can
be specific: "You can draw at most 120000 fen."); the Chinese one comes from `ZH` below, keyed
by the error code, with the raise site's `params` filled in. A code with no Chinese entry falls
back to the raised English message, and a test keeps every code the API can answer in `ZH`.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

SUPPORTED = ("zh", "en")
DEFAULT = "zh"

# Chinese messages by error code. `{name}` placeholders take the error's params; an entry may
# give a second, generic message (after `|`) for when the raise site did not pass them.
ZH: dict[str, str] = {
    # The request itself
    "BAD_REQUEST": "请求格式不正确，请对照接口文档。",
    "BODY_INVALID": "请求体必须是一个 JSON 对象。",
    "BODY_TOO_LARGE": "请求体过大（最多 {limit} 字节）。|请求体过大。",
    "UNKNOWN_FIELD": "不接受字段“{field}”，请去掉它。|请求中有不接受的字段，请去掉它。",
    "FIELD_REQUIRED": "缺少必填字段“{field}”。|缺少必填字段。",
    "FIELD_INVALID": "字段“{field}”的值不符合要求，请对照接口文档中的格式。|有字段的值不符合要求，请对照接口文档。",
    "UNSUPPORTED_MEDIA_TYPE": "请求体请用 Content-Type: application/json 发送。",
    "NOT_FOUND": "没有这个接口或资源。",
    "METHOD_NOT_ALLOWED": "这个接口不支持 {method} 方法，可用的方法见 Allow 响应头。|这个接口不支持该请求方法，可用的方法见 Allow 响应头。",
    "REQUEST_REFUSED": "这个请求未被接受。",
    "IDEMPOTENCY_KEY_REQUIRED": "请在 Idempotency-Key 请求头中带上一个 1-255 个字符的唯一键，这样重试时不会重复操作。",
    "IDEMPOTENCY_KEY_REUSED": "这个 Idempotency-Key 已经用于另一个请求体；新的操作请换一个新键。",
    "IDEMPOTENCY_IN_PROGRESS": "使用同一个 Idempotency-Key 的请求还在处理中，请稍后用同一个键重试。",
    # Our side
    "INTERNAL_ERROR": "系统出了点问题，没有做任何更改，请稍后重试。",
    "DEPENDENCY_UNAVAILABLE": "我们依赖的服务暂时繁忙或不可用，请稍后重试。",
    "MODEL_UNAVAILABLE": "自动评估暂时不可用，请稍后重试。",
    "RATE_LIMITED": "请求过于频繁，请在 {wait}后再试。|请求过于频繁，请稍后再试。",
    "UNAUTHORIZED": "请重新登录。",
    "FORBIDDEN": "不允许这个操作。",
    "CONFLICT": "当前状态不允许这个操作，请刷新后重试。",
    "UNPROCESSABLE": "请求不符合业务规则。",
    # Sign-in and tokens
    "OAUTH_CODE_INVALID": "微信授权码无效或已过期，请重新授权登录。|微信授权码无效或已过期，请重新授权登录。",
    "PHONE_INVALID": "请输入中国大陆手机号：11 位数字，以 13-19 开头，可加 +86。",
    "SMS_RATE_LIMITED": "验证码发送太频繁了，请在 {wait}后再获取。|验证码发送太频繁了，请稍后再获取。",
    "OTP_INVALID": "验证码不正确或已失效，请重新获取。",
    "OTP_LOCKED": "验证码错误次数过多，已失效；请在 {wait}后重新获取验证码。|验证码错误次数过多，已失效，请重新获取验证码。",
    "TOKEN_MISSING": "请先登录：在请求头中带上 Authorization: Bearer <access_token>。",
    "TOKEN_INVALID": "登录凭证无效，请重新登录。",
    "TOKEN_EXPIRED": "登录已过期，请用 refresh_token 换取新的令牌，或重新登录。",
    "TOKEN_REVOKED": "这个会话已结束，请重新登录。",
    "REFRESH_TOKEN_REUSED": "这个刷新令牌已经用过，为了您的账户安全，会话已结束，请重新登录。",
    "USER_NOT_FOUND": "用户不存在。",
    "OPS_FORBIDDEN": "运营接口需要有效的 X-Ops-Key 请求头（本地）或 IAM 签名（部署环境）。",
    # Phone, identity and cards
    "PHONE_TAKEN": "这个手机号已绑定其他账户。",
    "PHONE_REQUIRED": "请先绑定手机号。",
    "NO_PHONE_BOUND": "您的账户还没有绑定手机号。",
    "CURRENT_PHONE_PROOF_REQUIRED": "更换手机号需要原手机号收到的验证码（current_code），原手机丢失时请提供实名认证的姓名和身份证号。",
    "SECURITY_HOLD": "为了您的账户安全，更换手机号后 24 小时内不能借款或添加银行卡，请在 {wait}后再试。|为了您的账户安全，更换手机号后 24 小时内不能借款或添加银行卡。",
    "PROFILE_CHANGED": "您的资料刚刚有变化，请重试。",
    "ID_NUMBER_INVALID": "身份证号无效：应为 18 位（17 位数字加一位数字或 X），地区码、出生日期和校验位都要正确。",
    "AGE_NOT_ELIGIBLE": "借款人须年满 {min_age} 周岁且不超过 {max_age} 周岁。|借款人须年满 18 周岁且不超过 65 周岁。",
    "IDENTITY_ALREADY_VERIFIED": "您已经用另一个身份证号完成了实名认证。",
    "IDENTITY_TAKEN": "这个身份证号已绑定其他账户。",
    "IDENTITY_RATE_LIMITED": "今天的实名认证次数已用完，请在 {wait}后再试。|今天的实名认证次数已用完，请明天再试。",
    "IDENTITY_MISMATCH": "姓名与身份证号不一致，请检查后重试。",
    "IDENTITY_REQUIRED": "请先完成前面的步骤：实名认证、绑定手机号、添加银行卡（添加银行卡前须先实名认证）。",
    "SMS_CODE_REQUIRED": "您有未结清的借款：请先给绑定的手机发送验证码（POST /v1/auth/sms-codes），再把它作为 code 一起提交。",
    "CARD_INVALID": "银行卡号无效：请填写支持银行的借记卡号，16-19 位数字，并核对每一位。",
    "CARD_ALREADY_ADDED": "这张银行卡已经在您的账户中。",
    "CARD_LIMIT_REACHED": "每个账户最多添加 {max_cards} 张银行卡。|银行卡数量已达上限。",
    "CARD_NOT_FOUND": "没有这张银行卡。",
    # Applications and loans
    "PRODUCT_NOT_FOUND": "没有这个产品，可选的产品见 GET /v1/products。",
    "APPLICATION_NOT_FOUND": "没有这个申请。",
    "AMOUNT_OUT_OF_RANGE": "金额须在 {min_amount} 分到 {max_amount} 分之间。|金额超出了这个产品的范围（见 GET /v1/products 的 min_amount 和 max_amount，单位为分）。",
    "TERM_NOT_OFFERED": "这个产品可选的期限（月）：{terms}。|这个产品不提供这个期限，可选期限见 GET /v1/products。",
    "REPAYMENT_METHOD_NOT_OFFERED": "这个产品可选的还款方式：{methods}。|这个产品不支持这种还款方式，可选方式见 GET /v1/products。",
    "BUSINESS_CREDIT_CODE_INVALID": "请填写营业执照上 18 位的统一社会信用代码。",
    "BUSINESS_CREDIT_CODE_NOT_ACCEPTED": "只有经营贷需要填写统一社会信用代码，这个产品请不要填写 business_credit_code。",
    "APPLICATION_NOT_APPROVED": "这个申请没有获批，不能借款。",
    "NO_CREDIT_LINE": "您还没有授信额度，请先申请。",
    "APPLICATION_SUPERSEDED": "您的额度已由之后的一次审批设定，请用那次的申请借款。",
    "CREDIT_LINE_EXPIRED": "您的授信额度已过期，请重新申请。",
    "CREDIT_LINE_BUSY": "您的额度正在变动，请稍后重试。",
    "CREDIT_LIMIT_EXCEEDED": "您最多还可以借 {available} 分。|借款金额超过了可用额度（见 GET /v1/me 的 credit.available）。",
    "AFFORDABILITY": "每月还款将超过您收入减去支出后的一半，请减少金额或选择更长的期限。",
    "DISBURSE_AT_INVALID": "disburse_at 须为带时区的时间（如 2027-01-10T09:00:00+08:00），且在现在到 7 天之后之间。",
    "LOAN_OVERDUE": "您有逾期的借款，请先还清再借。",
    "TOO_MANY_LOANS": "您已经有 {max_loans} 笔借款，请先还清一笔再借。|您的借款笔数已达上限，请先还清一笔再借。",
    "LOAN_NOT_FOUND": "没有这笔借款。",
    "ANCHOR_NOT_FOUND": "那一天还没有锚定（每天凌晨的日终处理会锚定前一天）。",
    "LOAN_NOT_CANCELLABLE": "只有还未放款（scheduled）的借款可以取消。",
    "LOAN_BUSY": "这笔借款正在处理另一项操作，您的付款已退回，请稍后重试。",
    "APPLICATION_NOT_IN_REVIEW": "只有审核中的申请可以由运营决定。",
    "CREDIT_LIMIT_REQUIRED": "批准时须给出大于零的额度（credit_limit，单位为分）。",
    "CREDIT_LIMIT_OUT_OF_RANGE": "这个产品的额度最多为 {ceiling} 分。|额度超过了这个产品的最高金额。",
    # Repayments
    "LOAN_NOT_ACTIVE": "只有还款中或已逾期的借款可以还款或查询结清金额。",
    "OVERPAYMENT": "还款金额超过了结清所需的 {payoff} 分。|还款金额超过了结清所需的金额。",
    "PAYOFF_DATE_INVALID": "日期不能早于今天，也不能早于这笔借款最近一次还款的日期。",
    "REPAYMENT_DATE_INVALID": "还款日期不能早于这笔借款最近一次还款的日期。",
    "PAYMENT_PENDING": "您的付款正在确认中，请不要重复付款：如果没有成功，款项会自动退回。稍后用同一个 Idempotency-Key 再查询结果。",
    "PAYMENT_DECLINED": "您的钱包无法支付这笔金额，没有扣款。",
    "PAYMENT_UNCONFIRMED": "钱包没有及时应答，付款结果还未确认，请不要重复付款。",
    "REPAYMENT_UNAVAILABLE": "我们没能记录您的还款，款项已退回，请重试。",
}


def language(accept_language: str | None) -> str:
    """`zh` or `en` for an Accept-Language header (RFC 9110: ranges with q-values); the best
    supported range wins, and Chinese is the default."""
    best, best_q = DEFAULT, 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        found = re.search(r"\bq\s*=\s*([^;,\s]*)", params)
        if found:  # a q-value that is not a number (RFC 9110: 0 to 1) counts as not wanted
            try:
                q = float(found.group(1)) if re.fullmatch(r"[01](\.[0-9]{0,3})?", found.group(1)) else 0.0
            except ValueError:
                q = 0.0
        if primary in SUPPORTED and q > best_q:
            best, best_q = primary, q
    return best


def wait_phrase(seconds: int, lang: str) -> str:
    """How long to wait, rounded up to a unit a person reads: 45 秒 / 3 分钟 / 2 小时."""
    seconds = max(1, int(seconds))
    if seconds < 120:
        value, zh, en = seconds, "秒", "second"
    elif seconds < 2 * 3600:
        value, zh, en = math.ceil(seconds / 60), "分钟", "minute"
    else:
        value, zh, en = math.ceil(seconds / 3600), "小时", "hour"
    if lang == "zh":
        return f"{value} {zh}"
    return f"{value} {en}{'' if value == 1 else 's'}"


def message(code: str, lang: str, fallback: str, params: Mapping[str, Any] | None = None) -> str:
    """The message for `code` in `lang`: English is the raised message; Chinese comes from
    `ZH` (with `params`), or the raised message when the code has no entry."""
    if lang != "zh" or code not in ZH:
        return fallback
    specific, _, generic = ZH[code].partition("|")
    values = dict(params or {})
    if "retry_after" in values and "wait" not in values:
        values["wait"] = wait_phrase(values["retry_after"], "zh")
    try:
        return specific.format(**values)
    except (KeyError, IndexError, ValueError):
        return generic or specific
