"""Fixtures for loan tests: an approved borrower behind the auth seam, and a drawdown helper."""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from chalice.local import LambdaEventConverter
from chalice.test import Client

from chalicelib import wiring
from chalicelib.loans import credit, disbursement, people, service
from chalicelib.loans.models import ApplicationRecord
from chalicelib.loans.payout import SandboxPayout
from chalicelib.risk.reasons import feature_reason, rule_reason

NOW = datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)
ACCOUNT = "123456789012"  # the AWS account the `prod_client` pretends to be deployed in
APPLICANT = {"monthly_income": 3_000_000, "monthly_expenses": 500_000, "assets": 0, "debt": 0,
             "job_type": "fixed", "job_seniority_years": 5, "home": "owner", "marital_status": "single"}


CARDS = {"c-ok": "6222020000000001234", "c-0000": "6222021234567890000"}


def verified_people(patch: pytest.MonkeyPatch) -> None:
    """Every user is a verified 30-year-old with a phone and the cards `c-ok` and `c-0000`
    (the sandbox bank refuses the latter): the identity slice's answers, without it."""
    patch.setattr(people, "card_owned", lambda user, card: CARDS[card][-4:] if card in CARDS else None)
    patch.setattr(people, "payout_card", lambda user, card: people.PayoutCard(
        card, CARDS[card][-4:], CARDS[card], "张三") if card in CARDS else None)
    patch.setattr(people, "borrower", lambda user: people.Borrower(user, True, True, True, 30))
    patch.setattr(people, "sms_phone", lambda user: "13812348000")


@pytest.fixture()
def borrower(aws_stack, monkeypatch):
    """An approved borrower with a 1,000,000 fen line at 18 %, cards c-ok and c-0000."""
    verified_people(monkeypatch)
    gateway = SandboxPayout()
    wiring.override("payout_gateway", gateway)
    application_id = str(uuid.uuid4())
    ApplicationRecord(application_id=application_id, user_id="u-1", product_id="revolving-credit",
                      amount=1_000_000, term_months=12, purpose="装修", applicant=json.dumps(APPLICANT),
                      status="approved", credit_limit=1_000_000, apr="0.1800", reasons="[]",
                      model_version="test", decided_at=service.iso_utc(NOW), decision="{}").save()
    credit.set_line("u-1", limit=1_000_000, apr="0.1800", application_id=application_id,
                    product_id="revolving-credit", now=NOW)
    return {"application_id": application_id, "gateway": gateway}


def draw(borrower, amount=100_000, card="c-ok", at=None, term=12, method="equal_installment"):
    return service.draw("u-1", service.DrawRequest(borrower["application_id"], amount, term, method,
                                                   card, at), NOW)


def loan_of_its_own(user: str, amount: int, paid_out: datetime = NOW) -> str:
    """Another borrower with an approved 1,000,000 fen line and one 12-month loan on it, paid
    out at `paid_out` (up to seven days after NOW)."""
    application_id = str(uuid.uuid4())
    ApplicationRecord(application_id=application_id, user_id=user, product_id="revolving-credit",
                      amount=1_000_000, term_months=12, purpose="装修", applicant=json.dumps(APPLICANT),
                      status="approved", credit_limit=1_000_000, apr="0.1800", reasons="[]",
                      model_version="test", decided_at=service.iso_utc(NOW), decision="{}").save()
    credit.set_line(user, limit=1_000_000, apr="0.1800", application_id=application_id,
                    product_id="revolving-credit", now=NOW)
    loan_id = service.draw(user, service.DrawRequest(application_id, amount, 12, "equal_installment", "c-ok",
                                                     paid_out if paid_out != NOW else None), NOW)["loan_id"]
    assert disbursement.disburse(loan_id, paid_out) == "active"
    return loan_id


def review_application(user_id: str = "u-9", applicant: dict | None = None) -> str:
    """An application the model sent to review (as an operator finds it in /v1/ops/reviews)."""
    application_id = str(uuid.uuid4())
    ApplicationRecord(application_id=application_id, user_id=user_id, product_id="revolving-credit",
                      amount=800_000, term_months=12, purpose="教育", applicant=json.dumps(applicant or APPLICANT),
                      status="review", credit_limit=0, apr="0.2000", model_version="test",
                      reasons=json.dumps([rule_reason("MANUAL_REVIEW", "zh"),
                                          feature_reason("debt_to_income", "zh")], ensure_ascii=False),
                      decided_at=service.iso_utc(NOW), review_queue="review",
                      decision=json.dumps({"suggested_limit": 800_000, "suggested_apr": "0.2000"})).save()
    return application_id


@pytest.fixture()
def prod_client(aws_stack, tmp_path, monkeypatch):
    """chalice's test client with the `prod` stage's own settings from .chalice/config.json
    (real adapters, IAM for /v1/ops, `OPERATOR_ROLE_ARNS` with `${AWS::Partition}` and
    `${AWS::AccountId}` resolved as the deploy resolves them), resource names kept this test
    account's. `with prod_client.identity({...}):` sets API Gateway's request context
    identity (the SigV4 caller's `userArn`) of the requests made inside."""
    from app import app
    from infra.stage import CHALICE_CONFIG

    cfg = json.loads(CHALICE_CONFIG.read_text())
    prod = cfg["stages"]["prod"]
    variables = prod["lambda_functions"]["api_handler"]["environment_variables"]
    variables["OPERATOR_ROLE_ARNS"] = variables["OPERATOR_ROLE_ARNS"].replace(
        "${AWS::Partition}", "aws").replace("${AWS::AccountId}", ACCOUNT)
    prod["environment_variables"]["RESOURCE_PREFIX"] = "lending-local"
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(cfg))
    caller: dict[str, str] = {}
    create = LambdaEventConverter.create_lambda_event

    def with_identity(self, *args, **kwargs):
        event = create(self, *args, **kwargs)
        event["requestContext"]["identity"].update(caller)
        return event

    monkeypatch.setattr(LambdaEventConverter, "create_lambda_event", with_identity)

    @contextmanager
    def identity(fields):
        caller.clear()
        caller.update(fields)
        try:
            yield
        finally:
            caller.clear()

    with Client(app, stage_name="prod", project_dir=str(tmp_path)) as client:
        client.identity = identity
        yield client


@pytest.fixture()
def last_metrics(monkeypatch):
    """The last value the code added for each metric name (the metrics are also emitted)."""
    from chalicelib.core import observability
    seen: dict[str, float] = {}
    add_metric = observability.metrics.add_metric

    def metric(name, unit, value, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen[name] = value
        return add_metric(name=name, unit=unit, value=value, *args, **kwargs)

    monkeypatch.setattr(observability.metrics, "add_metric", metric)
    return seen
