"""Least-privilege IAM policies per stage, written to `.chalice/policy-<stage>.json`.

    python -m infra.policy            # regenerate all stages (a test checks they are current)

Every statement is scoped to the stage's resource prefix: its tables and indexes, queues,
secrets, and the personal-data key by its alias.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from infra.stage import CHALICE_CONFIG, chalice_config, stage_env


def policy(stage: str) -> dict[str, Any]:
    prefix = stage_env(stage)["RESOURCE_PREFIX"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Logs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": f"arn:*:logs:*:*:log-group:/aws/lambda/{prefix}*"},
            {"Sid": "Tables", "Effect": "Allow",
             "Action": ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:BatchGetItem",
                        "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                        "dynamodb:BatchWriteItem", "dynamodb:Query", "dynamodb:Scan",
                        "dynamodb:ConditionCheckItem"],
             "Resource": [f"arn:*:dynamodb:*:*:table/{prefix}-*",
                          f"arn:*:dynamodb:*:*:table/{prefix}-*/index/*"]},
            {"Sid": "Queues", "Effect": "Allow",
             "Action": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
             "Resource": f"arn:*:sqs:*:*:{prefix}-*"},
            {"Sid": "Secrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
             "Resource": f"arn:*:secretsmanager:*:*:secret:{prefix}/*"},
            {"Sid": "TokenKeysCreatedOnFirstUse", "Effect": "Allow",
             "Action": ["secretsmanager:PutSecretValue"],
             "Resource": f"arn:*:secretsmanager:*:*:secret:{prefix}/jwt-*"},
            {"Sid": "PersonalDataKey", "Effect": "Allow",
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
             "Resource": "arn:*:kms:*:*:key/*",
             "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": f"alias/{prefix}-pii"}}},
            {"Sid": "TextMessages", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": "*"},
            {"Sid": "Tracing", "Effect": "Allow",
             "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
        ],
    }


def render(stage: str) -> str:
    return json.dumps(policy(stage), indent=2) + "\n"


def main() -> int:
    for stage in chalice_config()["stages"]:
        (CHALICE_CONFIG.parent / f"policy-{stage}.json").write_text(render(stage), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
