"""The generated parts of docs/: route and error-code tables, and the money rules' worked examples.

    python -m infra.docs            # rewrite the generated blocks of docs/*.md (make docs)
    python -m infra.docs --check    # exit 1 when a block is out of date (a unit test runs this)

A generated block sits between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`;
everything else in docs/ is written by hand. The tables come from the route registry
(`api.http.ROUTES`, the same one the OpenAPI document and the security matrix use) and the
examples from the money engine, so neither can drift from the code.
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from infra.stage import ROOT, apply_stage_env

DOCS = ROOT / "docs"

# What a client should do about each error code (the message is for the person; this is for
# the developer). Every code the API can answer must be here: tests/unit/test_docs.py checks.
ADVICE: dict[str, str] = {
    # The request
    "BODY_INVALID": "Send a JSON object with `Content-Type: application/json`.",
    "BODY_TOO_LARGE": "Bodies are at most 16 KiB; you are sending something that does not belong.",
    "UNKNOWN_FIELD": "Remove the field named in the message: fields you do not own (limit, rate, status, owner) are never accepted.",
    "FIELD_REQUIRED": "Add the field named in the message.",
    "FIELD_INVALID": "Fix the field named in the message to the type and format docs/API.md and /openapi.json give.",
    "UNSUPPORTED_MEDIA_TYPE": "Send `Content-Type: application/json`.",
    "NOT_FOUND": "No such path: check the path against /openapi.json (no trailing parts, `/v1` prefix).",
    "METHOD_NOT_ALLOWED": "Use one of the methods in the `Allow` header.",
    "REQUEST_REFUSED": "The gateway refused the request before the API saw it; check the URL, headers and size.",
    "IDEMPOTENCY_KEY_REQUIRED": "Send `Idempotency-Key` (1-255 visible ASCII characters; a UUID) on this POST.",
    "IDEMPOTENCY_KEY_REUSED": "You reused a key with another body: a new operation needs a new key; a retry must send the same body.",
    "IDEMPOTENCY_IN_PROGRESS": "The first request with this key is still running: retry with the same key and body in a second or two.",
    # Our side
    "INTERNAL_ERROR": "Nothing was changed. Retry later with the same Idempotency-Key; report the `X-Request-Id` if it persists.",
    "DEPENDENCY_UNAVAILABLE": "Nothing half-done was kept. Retry after `Retry-After` seconds (with the same Idempotency-Key).",
    "RATE_LIMITED": "The gateway throttled you: wait and retry with backoff.",
    "MODEL_UNAVAILABLE": "Operators: the credit model could not be loaded in this function (see `/health`); applications meanwhile go to review, none is declined for it.",
    # Sign-in and tokens
    "UNAUTHORIZED": "Deployed, the gateway refused the token: refresh it (POST /v1/auth/refresh) or sign in again.",
    "FORBIDDEN": "Deployed, the gateway refused the call (an operator route without an operator's IAM signature).",
    "OAUTH_CODE_INVALID": "Ask the WeChat client for a new OAuth code (codes work once, for 5 minutes). Locally: `dev-<openid>`.",
    "PHONE_INVALID": "Ask for a mainland mobile number: 11 digits starting 13-19, `+86` optional, nothing else.",
    "SMS_RATE_LIMITED": "Show the wait: `Retry-After` seconds (the message says it too). Limits: 1 per minute and 10 per day per phone, 30 per 10 minutes per address.",
    "OTP_INVALID": "Let the person retype the code or request a new one (POST /v1/auth/sms-codes).",
    "OTP_LOCKED": "Five wrong tries voided the code: request a new one (after `Retry-After` seconds).",
    "TOKEN_MISSING": "Send `Authorization: Bearer <access_token>`.",
    "TOKEN_INVALID": "The token is not one of ours or is malformed: sign in again.",
    "TOKEN_EXPIRED": "Access tokens live 15 minutes: exchange the refresh token (POST /v1/auth/refresh), then retry.",
    "TOKEN_REVOKED": "The session ended (sign-out, phone change or a reused refresh token): sign in again.",
    "REFRESH_TOKEN_REUSED": "A refresh token works once; this one was used before, so the whole session was ended for safety: sign in again.",
    "OPS_FORBIDDEN": "Operator routes need `X-Ops-Key` locally (the key `make run` prints) or an operator role's SigV4 signature when deployed.",
    # Phone, identity, cards
    "PHONE_TAKEN": "That phone belongs to another account: sign in with it instead, or bind another phone.",
    "PROFILE_CHANGED": "The profile changed at the same moment: retry.",
    "PHONE_REQUIRED": "Bind a phone first (POST /v1/auth/sms-codes, then POST /v1/me/phone).",
    "NO_PHONE_BOUND": "There is no bound phone to send a code to: bind one first.",
    "CURRENT_PHONE_PROOF_REQUIRED": "Replacing a bound phone needs a code sent to the bound phone (`current_code`), or `name` + `id_number` when that phone is lost.",
    "SECURITY_HOLD": "A phone was replaced less than 24 hours ago: drawing and adding cards wait until `Retry-After`.",
    "ID_NUMBER_INVALID": "Let the person check the 18-character ID number (region, birth date, check digit).",
    "AGE_NOT_ELIGIBLE": "Borrowers are 18 to 65; nothing to retry.",
    "IDENTITY_MISMATCH": "The name does not match the ID number at the verification provider: let the person check both (5 attempts a day).",
    "IDENTITY_TAKEN": "This identity is verified on another account: the person should sign in to that one.",
    "IDENTITY_RATE_LIMITED": "At most 5 real-name checks per user per Beijing day: show the wait (`Retry-After`, until midnight) and check the name and ID number before trying again.",
    "IDENTITY_ALREADY_VERIFIED": "This account is verified with another ID number; it cannot change.",
    "IDENTITY_REQUIRED": "Finish the earlier steps first: identity before a card; identity, phone and card before applying.",
    "SMS_CODE_REQUIRED": "With a loan outstanding, adding a card needs a fresh code to the bound phone: send one, then repeat with `code`.",
    "CARD_INVALID": "Let the person check the card number: a debit card of a supported bank, 16-19 digits, Luhn-valid.",
    "CARD_ALREADY_ADDED": "The card is already on the account: use its `card_id` from GET /v1/me.",
    "CARD_LIMIT_REACHED": "At most 5 cards per account.",
    "CARD_NOT_FOUND": "Use a `card_id` from GET /v1/me (another user's card is not found either).",
    # Applications and loans
    "PRODUCT_NOT_FOUND": "Use a `product_id` from GET /v1/products.",
    "APPLICATION_NOT_FOUND": "Use an `application_id` of this user (another user's is not found either).",
    "AMOUNT_OUT_OF_RANGE": "Keep the amount within the product's `min_amount`..`max_amount` (fen).",
    "TERM_NOT_OFFERED": "Use one of the product's `term_months`.",
    "REPAYMENT_METHOD_NOT_OFFERED": "Use one of the product's `repayment_methods`.",
    "BUSINESS_CREDIT_CODE_INVALID": "Business loans need the business's 18-character unified social credit code, checksum-valid.",
    "BUSINESS_CREDIT_CODE_NOT_ACCEPTED": "Leave `business_credit_code` out: only business loans take it.",
    "APPLICATION_NOT_APPROVED": "Only an approved application can be drawn on; apply again or wait for the operator's decision.",
    "NO_CREDIT_LINE": "Apply first (POST /v1/applications).",
    "APPLICATION_SUPERSEDED": "A later decision set the credit line: draw with that application's id (GET /v1/me shows the line).",
    "CREDIT_LINE_EXPIRED": "Apply again for a new line.",
    "CREDIT_LINE_BUSY": "Another change to the line is in flight: retry with the same Idempotency-Key.",
    "CREDIT_LIMIT_EXCEEDED": "Draw at most `credit.available` of GET /v1/me (the message says how much).",
    "AFFORDABILITY": "Offer a smaller amount or a longer term: the monthly payment may not exceed half of income after expenses.",
    "DISBURSE_AT_INVALID": "Send an RFC 3339 time with its offset, from now to 7 days ahead, or leave it out (now).",
    "LOAN_OVERDUE": "An overdue loan blocks new draws: repay it first.",
    "TOO_MANY_LOANS": "At most 3 live loans: repay one first.",
    "LOAN_NOT_FOUND": "Use a `loan_id` of this user (another user's is not found either).",
    "ANCHOR_NOT_FOUND": "Operators: that day is not anchored yet; close of business anchors the day before each morning (00:05 Beijing), catching up missed days.",
    "LOAN_NOT_CANCELLABLE": "Only a `scheduled` loan (not yet paid out) can be cancelled; repay it instead.",
    "APPLICATION_NOT_IN_REVIEW": "Only applications in `review` take an operator's decision (someone may have decided it already).",
    "CREDIT_LIMIT_REQUIRED": "An approval needs `credit_limit` (fen, above zero).",
    "CREDIT_LIMIT_OUT_OF_RANGE": "Keep `credit_limit` at most the product's `max_amount`.",
    # Repayments
    "LOAN_NOT_ACTIVE": "Only `active` or `overdue` loans take repayments and payoff quotes.",
    "LOAN_BUSY": "Another operation on the loan was in flight and your payment was given back: retry with the same Idempotency-Key.",
    "OVERPAYMENT": "Pay at most the payoff (GET /v1/loans/{loan_id}/payoff): interest is never charged in advance.",
    "PAYOFF_DATE_INVALID": "Quote for today or a later date (YYYY-MM-DD), not before the loan's last repayment.",
    "PAYMENT_PENDING": "Do not pay again: the wallet has not confirmed yet. Ask again later with the same Idempotency-Key to see the result; an unconfirmed debit is given back automatically.",
    "PAYMENT_DECLINED": "The wallet refused the debit (nothing was taken): let the person choose another amount or top up.",
    "REPAYMENT_UNAVAILABLE": "The payment could not be recorded and was given back: retry with the same Idempotency-Key.",
}

# Where the gateway itself answers (no route declares these).
GATEWAY_CODES = {"NOT_FOUND": (404,), "METHOD_NOT_ALLOWED": (405,), "UNAUTHORIZED": (401,),
                 "FORBIDDEN": (403,), "RATE_LIMITED": (429,), "REQUEST_REFUSED": (400,)}


def _load_app() -> None:
    apply_stage_env("local")
    import app  # noqa: F401 - registers every route


def api_error_codes() -> dict[str, dict[str, Any]]:
    """Every code the API can answer: its statuses and the operations that declare it."""
    _load_app()
    from chalicelib.api.http import ROUTES
    from chalicelib.api.openapi import error_codes
    out: dict[str, dict[str, Any]] = {}
    for doc in ROUTES:
        if doc.path == "/probe":
            continue
        for status, codes in error_codes(doc).items():
            for code in codes:
                entry = out.setdefault(code, {"statuses": set(), "operations": []})
                entry["statuses"].add(status)
                entry["operations"].append(f"{doc.method} {doc.path}")
    for code, statuses in GATEWAY_CODES.items():
        entry = out.setdefault(code, {"statuses": set(), "operations": []})
        entry["statuses"].update(statuses)
    return out


def error_table() -> str:
    from chalicelib.core.messages import ZH
    codes = api_error_codes()
    routes = _routes()
    groups = {"every route": routes,
              "every signed-in route": [d for d in routes if d.auth == "bearer"],
              "every route with a body": [d for d in routes if d.body is not None],
              "every operator route": [d for d in routes if d.auth == "ops"]}
    named = {frozenset(f"{d.method} {d.path}" for d in docs): name for name, docs in groups.items()}
    rows = ["| code | status | where | what the client should do | message (zh) |",
            "|---|---|---|---|---|"]
    for code, entry in sorted(codes.items(), key=lambda item: (min(item[1]["statuses"]), item[0])):
        operations = sorted(set(entry["operations"]))
        if not operations:
            where = "the gateway (any path)"
        elif frozenset(operations) in named:
            where = named[frozenset(operations)]
        elif len(operations) > 4:
            where = f"{len(operations)} operations"
        else:
            where = "<br>".join(f"`{op}`" for op in operations)
        statuses = ", ".join(str(s) for s in sorted(entry["statuses"]))
        zh = ZH.get(code, "").split("|")[-1 if "{" in ZH.get(code, "").split("|")[0] else 0]
        rows.append(f"| `{code}` | {statuses} | {where} | {ADVICE.get(code, '**(no advice yet)**')} | {zh} |")
    return "\n".join(rows)


def _routes() -> list[Any]:
    _load_app()
    from chalicelib.api.http import ROUTES
    return [doc for doc in ROUTES if doc.path != "/probe"]


def route_table(ops: bool) -> str:
    rows = ["| method and path | auth | success | what it does |", "|---|---|---|---|"]
    for doc in _routes():
        if (doc.auth == "ops") != ops:
            continue
        auth = {"bearer": "Bearer", "ops": "X-Ops-Key / SigV4", None: "none"}[doc.auth]
        key = " + `Idempotency-Key`" if doc.idempotent else ""
        query = "".join(f" `?{name}=`" for name in doc.query)
        rows.append(f"| `{doc.method} {doc.path}`{query} | {auth}{key} | {doc.status} | {doc.summary} |")
    return "\n".join(rows)


# --- the money rules, worked with the engine -------------------------------------------------

PRINCIPAL, APR, TERM, DISBURSED = 1_000_000, Decimal("0.1825"), 6, date(2027, 1, 10)


def fen(amount: int) -> str:
    return f"{amount:,} fen (¥{amount // 100:,}.{amount % 100:02d})"


def _schedule(state: Any) -> str:
    from chalicelib.money.engine import schedule_items
    rows = ["| # | due date | principal | interest | penalty | total | paid | status |",
            "|---|---|---:|---:|---:|---:|---:|---|"]
    for item in schedule_items(state):
        rows.append(f"| {item['installment']} | {item['due_date']} | {item['principal']:,} | "
                    f"{item['interest']:,} | {item['penalty']:,} | {item['total']:,} | "
                    f"{item['paid']:,} | {item['status']} |")
    return "\n".join(rows)


def _loan(method: str) -> Any:
    from chalicelib.money.engine import new_loan
    return new_loan(PRINCIPAL, APR, TERM, method, DISBURSED, apr_cap=Decimal("0.24"))


def money_examples() -> dict[str, Any]:
    """The three worked examples, as numbers (checked by tests/unit/test_docs.py) and text."""
    from chalicelib.money.engine import (apply_repayment, close_of_business, payoff_quote,
                                         schedule_items)
    out: dict[str, Any] = {}

    # 1. 等额本息: the first installment paid five days early.
    loan = _loan("equal_installment")
    first = schedule_items(loan)[0]
    early = date(2027, 2, 5)
    paid = apply_repayment(loan, first["total"], early)
    out["equal_installment"] = {"before": loan, "amount": first["total"], "on": early,
                                "allocation": paid.allocation.to_dict(), "after": paid.state}

    # 2. 等额本金: the first installment paid three days late.
    loan = _loan("equal_principal")
    first = schedule_items(loan)[0]
    due = date.fromisoformat(first["due_date"])
    late = due + timedelta(days=3)
    closed = loan
    for day in range(1, 4):  # the daily close of business runs for D+1, D+2, D+3
        closed = close_of_business(closed, due + timedelta(days=day)).state
    quote = payoff_quote(closed, late)
    owed = first["total"] + sum(i.penalty for i in closed.installments[:1])
    paid = apply_repayment(closed, owed, late)
    out["equal_principal"] = {"before": loan, "overdue": closed, "on": late, "amount": owed,
                              "payoff": quote.to_dict(), "allocation": paid.allocation.to_dict(),
                              "after": paid.state}

    # 3. 先息后本: interest on the due date, then half the principal back early, then a payoff.
    loan = _loan("interest_first")
    first = schedule_items(loan)[0]
    due = date.fromisoformat(first["due_date"])
    step1 = apply_repayment(loan, first["total"], due)
    prepay_on = date(2027, 2, 25)
    quote_before = payoff_quote(step1.state, prepay_on).to_dict()
    prepay = 507_500
    step2 = apply_repayment(step1.state, prepay, prepay_on)
    payoff_on = date(2027, 3, 1)
    quote = payoff_quote(step2.state, payoff_on).to_dict()
    step3 = apply_repayment(step2.state, quote["amount"], payoff_on)
    out["interest_first"] = {"before": loan, "first": first["total"], "due": due,
                             "after_first": step1.state, "prepay_on": prepay_on, "prepay": prepay,
                             "quote_before": quote_before, "prepay_allocation": step2.allocation.to_dict(),
                             "after_prepay": step2.state, "payoff_on": payoff_on, "payoff": quote,
                             "closed": step3.closed}
    return out


def money_block() -> str:
    from chalicelib.money.engine import schedule_items
    from chalicelib.money.schedule import daily_penalty, penalty_rate
    ex = money_examples()
    daily = PRINCIPAL * APR / 365
    parts = [f"All three: {fen(PRINCIPAL)} drawn at apr `{APR}` ({APR * 100}% a year, so "
             f"{daily:.0f} fen a day on the whole principal), {TERM} months, paid out on "
             f"{DISBURSED.isoformat()} (Asia/Shanghai). Amounts in the tables are fen."]

    a = ex["equal_installment"]
    alloc = a["allocation"]
    after = schedule_items(a["after"])
    parts += ["", "### 等额本息 `equal_installment`: paying an installment early", "",
              "The schedule when the loan is paid out (level payment "
              f"{schedule_items(a['before'])[0]['total']:,} fen; the last installment takes the "
              "principal left, so its total differs):", "", _schedule(a["before"]), "",
              f"On {a['on'].isoformat()}, five days before the first due date, the borrower pays the "
              f"amount the first reminder showed, {fen(a['amount'])}. Nothing is due yet, so it all "
              f"goes to the installment accruing now: first its interest so far — "
              f"{(a['on'] - DISBURSED).days} days × {daily:.0f} fen = {fen(alloc['interest'])}, not "
              f"the {schedule_items(a['before'])[0]['interest']:,} fen a full period would have cost — "
              f"then its principal. The installment is `paid`; the {fen(alloc['principal'] - schedule_items(a['before'])[0]['principal'])} "
              f"left over is principal paid early, so {fen(a['after'].outstanding_principal)} remains "
              f"and the later installments keep their due dates with a new level payment "
              f"({after[1]['total']:,} fen). The second installment's days now run from "
              f"{a['on'].isoformat()}, not from the first due date:", "", _schedule(a["after"])]

    b = ex["equal_principal"]
    before = schedule_items(b["before"])[0]
    due = date.fromisoformat(before["due_date"])
    rate = penalty_rate(APR, Decimal("0.24"))
    per_day = daily_penalty(before["principal"], rate)
    alloc = b["allocation"]
    parts += ["", "### 等额本金 `equal_principal`: paying three days late", "",
              "The schedule (equal principal each month, the last takes the rounding rest):", "",
              _schedule(b["before"]), "",
              f"The first installment is due on {due.isoformat()} (D). D+1 ({(due + timedelta(days=1)).isoformat()}) "
              f"is the grace day: paying by its end costs nothing. The borrower pays on "
              f"{b['on'].isoformat()} (D+3) instead. The installment became `overdue` at the close of "
              f"business of D+2, and owes penalty for every day from D+1 to the day before payment "
              f"(D+1 and D+2): its unpaid principal × min(1.5 × apr, 24 % cap) / 365 = "
              f"{before['principal']:,} × {rate} / 365 = {per_day:,} fen a day, so "
              f"{fen(alloc['penalty'])}. The schedule on D+3, before paying:", "",
              _schedule(b["overdue"]), "",
              f"Paying the installment's total plus its penalty, {fen(b['amount'])}, settles it "
              f"penalty → interest → principal ({alloc['penalty']:,} + {alloc['interest']:,} + "
              f"{alloc['principal']:,}). The interest of the days since D belongs to the second "
              f"installment, which is still accruing. Paying off that day instead would have cost "
              f"{fen(b['payoff']['amount'])} (principal {b['payoff']['principal']:,}, interest "
              f"{b['payoff']['interest']:,}, penalty {b['payoff']['penalty']:,}).", "",
              _schedule(b["after"])]

    c = ex["interest_first"]
    alloc = c["prepay_allocation"]
    parts += ["", "### 先息后本 `interest_first`: a partial prepayment, then the payoff", "",
              "The schedule (interest each month by its days, all principal with the last):", "",
              _schedule(c["before"]), "",
              f"The borrower pays the first installment's {fen(c['first'])} on its due date "
              f"{c['due'].isoformat()}. On {c['prepay_on'].isoformat()} the payoff would be "
              f"{fen(c['quote_before']['amount'])}; they pay {fen(c['prepay'])}: first the second "
              f"installment's interest so far ({fen(alloc['interest'])}, "
              f"{(c['prepay_on'] - c['due']).days} days), which pays it early (it has no principal), "
              f"then {fen(alloc['principal'])} of principal. The later installments are recomputed "
              f"on the {fen(c['after_prepay'].outstanding_principal)} left, their days running from "
              f"{c['prepay_on'].isoformat()}:", "", _schedule(c["after_prepay"]), "",
              f"On {c['payoff_on'].isoformat()}, `GET /v1/loans/{{loan_id}}/payoff?on={c['payoff_on'].isoformat()}` "
              f"answers {fen(c['payoff']['amount'])}: the principal {c['payoff']['principal']:,} plus "
              f"the interest of {(c['payoff_on'] - c['prepay_on']).days} days on it "
              f"({c['payoff']['interest']:,}), and no fee. Paying exactly that closes the loan"
              f"{'' if c['closed'] else ' (it did not!)'}."]
    return "\n".join(parts)


# --- the blocks --------------------------------------------------------------------------------

BLOCKS: dict[str, dict[str, Callable[[], str]]] = {
    "API.md": {"routes": lambda: route_table(ops=False), "errors": error_table},
    "OPERATIONS.md": {"ops-routes": lambda: route_table(ops=True)},
    "MONEY.md": {"examples": money_block},
}
_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?:.*?\n)?(<!-- END GENERATED: (?P=name) -->)",
                    re.S)


def render(text: str, blocks: dict[str, Callable[[], str]]) -> str:
    seen = set()

    def fill(match: re.Match) -> str:
        seen.add(match.group("name"))
        return match.group(1) + blocks[match.group("name")]() + "\n" + match.group(3)

    out = _BLOCK.sub(fill, text)
    missing = set(blocks) - seen
    if missing:
        raise SystemExit(f"no marker for block(s) {sorted(missing)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.docs")
    parser.add_argument("--check", action="store_true", help="fail if a generated block is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, blocks in BLOCKS.items():
        path = DOCS / name
        text = path.read_text(encoding="utf-8")
        fresh = render(text, blocks)
        if fresh != text:
            stale.append(name)
            if not args.check:
                path.write_text(fresh, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)} (run `make docs`)", file=sys.stderr)
        return 1
    print("docs: " + (", ".join(stale) + " rewritten" if stale else "up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
