"""Who is paged, and for what: the stage's alarms and the topic they notify.

Every alarm sends to one SNS topic, `<prefix>-alarms`; the on-call rota subscribes to it (an
e-mail, a pager webhook or AWS Chatbot: `aws sns subscribe --topic-arn <AlarmTopic> ...`, see
the README). The topic is encrypted with its own key, whose policy lets CloudWatch use it: an
alarm cannot publish to a topic under a customer managed key otherwise (Amazon SNS Developer
Guide, "Configure AWS KMS permissions for AWS services").

What pages:
- a message in any dead-letter queue (a consumer's, or the jobs' asynchronous DLQ): a
  disbursement, a notification or a scheduled job failed all its retries and waits for a person;
- a job that left work undone after its passes (`RepaymentReconcileFailed`, emitted by
  `chalicelib.core.jobs` on every run, 0 when clean; `CloseOfBusinessLoanFailed`, a late loan's
  last delivery failed);
- money that did not move (`DisbursementFailed`), a missing partner setting
  (`PartnerSettingsMissing`), the credit model failing to load (`ModelUnavailable`);
- the credit model's drift: the weekly PSI above 0.25 (`ModelDriftPSI`, chalicelib.risk.monitor);
- the day's ledger anchor not written (`LedgerAnchorFailed`, chalicelib.ledger).
"""
from __future__ import annotations

from typing import Any

TOPIC = "AlarmTopic"

# The application's own metrics that page, with why (namespace and `service` dimension are the
# stage's Powertools settings). Each is emitted only when something went wrong, or as 0 on a
# clean run, so "any data point above 0 in 5 minutes" is the condition.
PAGES: dict[str, str] = {
    "CloseOfBusinessLoanFailed": "A late loan could not be closed for the day (overdue mark, penalty) on its "
                                 "message's last delivery: it is in the closing DLQ",
    "RepaymentReconcileFailed": "Repayment intents a dead function left open could not be settled "
                                "(posted or refunded); a borrower's money may be in limbo",
    "DisbursementFailed": "A payout to a borrower's card was refused; the loan waits for an operator",
    "PartnerSettingsMissing": "A partner's settings (secret) are missing or empty: that path is down "
                              "until an operator sets them (make check-secrets)",
    "ModelUnavailable": "The credit model could not be loaded: every application goes to manual review",
    "PortfolioDrift": "The portfolio's counters differ from a recount of the loans: a write path changed "
                      "a loan without moving them (the check's log names each cell)",
    "LedgerAnchorFailed": "The day's ledger anchor (root, proofs, locked S3 copy) could not be written; close "
                          "of business is retried; statements lack that day's proof until it is",
}


def _alarm(name: str, description: str, *, period: int = 300, threshold: float = 0,
           **metric: Any) -> dict[str, Any]:
    """Above `threshold` (the largest value in a `period` of seconds), notifying the topic."""
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": name, "AlarmDescription": description,
        "Statistic": "Maximum", "Period": period, "EvaluationPeriods": 1, "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
        **metric, "AlarmActions": [{"Ref": TOPIC}], "OKActions": [{"Ref": TOPIC}]}}


def resources(stage: str, prefix: str, template: dict[str, Any]) -> dict[str, Any]:
    """The topic, its key, and an alarm on every dead-letter queue of `template` (the merge
    template's Resources so far), on each metric of PAGES and on the credit model's drift."""
    from chalicelib.risk.drift import ALARM
    from infra.stage import stage_env
    from infra.template import _key

    env = stage_env(stage)
    service = [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    out: dict[str, Any] = {
        "AlarmKey": _key(f"{prefix}: the alarm topic", {
            "Sid": "CloudWatchAlarmsPublish", "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}),
        TOPIC: {"Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": f"{prefix}-alarms", "DisplayName": f"{prefix} alarms",
            "KmsMasterKeyId": {"Ref": "AlarmKey"}}},
        "AlarmTopicPolicy": {"Type": "AWS::SNS::TopicPolicy", "Properties": {
            "Topics": [{"Ref": TOPIC}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "CloudWatchAlarmsOfThisAccount", "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish",
                "Resource": {"Ref": TOPIC},
                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}]}}},
    }
    for logical, resource in sorted(template.items()):
        if resource.get("Type") == "AWS::SQS::Queue" and \
                str(resource["Properties"].get("QueueName", "")).endswith("-dlq"):
            name = resource["Properties"]["QueueName"]
            out[logical + "Alarm"] = _alarm(
                f"{name}-not-empty",
                f"{name} holds a message that failed every retry: read it, fix the cause, redrive "
                "it (docs/OPERATIONS.md)",
                Namespace="AWS/SQS", MetricName="ApproximateNumberOfMessagesVisible",
                Dimensions=[{"Name": "QueueName", "Value": {"Fn::GetAtt": [logical, "QueueName"]}}])
    for metric, why in PAGES.items():
        out[metric + "Alarm"] = _alarm(
            f"{prefix}-{metric}", why, Namespace=env["POWERTOOLS_METRICS_NAMESPACE"],
            MetricName=metric, Dimensions=service)
    # The weekly drift check (chalicelib.risk.monitor) emits ModelDriftPSI, the largest PSI of
    # the week (score or any input); above 0.25 the population has shifted.
    out["ModelDriftAlarm"] = _alarm(
        f"{prefix}-model-drift", "Credit model: a weekly PSI (score or input) above 0.25 against the "
        "training baseline; see GET /v1/ops/model and models/MODEL_CARD.md",
        period=86400, threshold=ALARM, Namespace=env["POWERTOOLS_METRICS_NAMESPACE"],
        MetricName="ModelDriftPSI", Dimensions=service)
    return out
