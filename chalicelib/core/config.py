"""Stage configuration, read from the environment that `.chalice/config.json` sets.

Resource names follow one convention, `<prefix>-<short name>`, so the merge template, the IAM
policies, the local stack and the code all derive the same names from one prefix.
"""
from __future__ import annotations

import os

APP_NAME = "lending"


def stage() -> str:
    return os.environ.get("STAGE", "local")


def resource_prefix() -> str:
    return os.environ.get("RESOURCE_PREFIX", f"{APP_NAME}-{stage()}")


def table_name(short: str) -> str:
    return f"{resource_prefix()}-{short}"


def queue_name(short: str) -> str:
    return f"{resource_prefix()}-{short}"


def secret_name(short: str) -> str:
    return f"{resource_prefix()}/{short}"


def pii_key_alias() -> str:
    return f"alias/{resource_prefix()}-pii"


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def is_local() -> bool:
    return stage() == "local"


def operator_role_arns() -> tuple[str, ...]:
    """The IAM roles whose sessions may call /v1/ops when deployed (`OPERATOR_ROLE_ARNS`, set
    per stage for the API function in `.chalice/config.json`; comma- or space-separated)."""
    raw = os.environ.get("OPERATOR_ROLE_ARNS", "")
    return tuple(arn for arn in raw.replace(",", " ").split() if arn)


def anchor_bucket() -> str:
    """The S3 bucket (Object Lock, compliance mode) holding each day's ledger anchor. Deployed,
    the merge template names it `<prefix>-ledger-anchors-<account>` (bucket names are global)
    and sets `ANCHOR_BUCKET`; the local stack's is `<prefix>-ledger-anchors`."""
    return os.environ.get("ANCHOR_BUCKET") or f"{resource_prefix()}-ledger-anchors"


def anchor_retention_days() -> int:
    """How long S3 keeps each anchor undeletable (compliance mode), per stage."""
    return int(os.environ.get("ANCHOR_RETENTION_DAYS", "1"))
