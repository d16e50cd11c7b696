"""Create every AWS resource of a stage from the one set of definitions, and seed it.

Used by the local stack (against moto) and by the tests (inside `mock_aws`). The definitions
are the pynamodb models (`chalicelib.adapters.db.TABLES`) and `chalicelib.core.resources`.
"""
from __future__ import annotations

import json
import secrets as pysecrets
from contextlib import contextmanager
from typing import Iterator

from chalicelib.adapters import aws
from chalicelib.core import config
from chalicelib.adapters.db import TABLES
from chalicelib.core.resources import QUEUES, SECRETS
from infra.stage import visibility_timeout


def ttl_attribute(model) -> str | None:  # type: ignore[no-untyped-def]
    from pynamodb.attributes import TTLAttribute
    for attr in model.get_attributes().values():
        if isinstance(attr, TTLAttribute):
            return attr.attr_name
    return None


def create_tables() -> list[str]:
    names = []
    for model in TABLES:
        if not model.exists():
            model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
        names.append(model.Meta.table_name)
    return names


def create_queues(stage: str, *, local_visibility: int | None = None) -> dict[str, str]:
    """Each queue with its dead-letter queue. Returns {key: queue url}."""
    sqs = aws.client("sqs")
    urls = {}
    for spec in QUEUES:
        dlq_url = sqs.create_queue(QueueName=config.queue_name(spec.key) + "-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        visibility = local_visibility or visibility_timeout(stage, spec.consumer)
        urls[spec.key] = sqs.create_queue(
            QueueName=config.queue_name(spec.key),
            Attributes={"VisibilityTimeout": str(visibility),
                        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                                     "maxReceiveCount": spec.max_receive_count})},
        )["QueueUrl"]
    return urls


def create_keys_and_secrets() -> dict[str, str]:
    """The personal-data KMS key (by alias) and the secrets. Returns the generated values."""
    kms = aws.client("kms")
    aliases = {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
    if config.pii_key_alias() not in aliases:
        key_id = kms.create_key(Description="personal data (ID and card numbers)")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=config.pii_key_alias(), TargetKeyId=key_id)
    sm = aws.client("secretsmanager")
    values = {}
    for spec in SECRETS:
        name = config.secret_name(spec.key)
        value = json.dumps({"key": pysecrets.token_hex(32)}) if spec.generated else json.dumps(
            {"app_id": "local-sandbox", "app_secret": "local-sandbox"})
        try:
            sm.create_secret(Name=name, SecretString=value)
            values[spec.key] = value
        except sm.exceptions.ResourceExistsException:
            values[spec.key] = sm.get_secret_value(SecretId=name)["SecretString"]
    return values


def create_anchor_bucket() -> str:
    """The ledger anchors' bucket, with Object Lock: every object kept in compliance mode for the
    stage's retention (the merge template's `LedgerAnchorBucket` when deployed)."""
    s3 = aws.client("s3")
    name = config.anchor_bucket()
    try:
        kwargs = {} if config.region() == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": config.region()}}
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True, **kwargs)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        return name
    s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": config.anchor_retention_days()}}})
    return name


def seed() -> int:
    from chalicelib.loans.catalog import seed_products
    return seed_products()


def bootstrap(stage: str, *, local_visibility: int | None = None) -> dict:
    """Everything a stage needs, created idempotently. The app must already be imported."""
    tables = create_tables()
    if stage == "local":  # the local stack's clock and parked messages; never deployed
        from chalicelib.adapters import testclock
        testclock.create_table()
    queues = create_queues(stage, local_visibility=local_visibility)
    secret_values = create_keys_and_secrets()
    bucket = create_anchor_bucket()
    products = seed()
    return {"tables": tables, "queues": queues, "secrets": secret_values, "products": products,
            "anchor_bucket": bucket}


@contextmanager
def fresh_moto_account(*, local_visibility: int | None = 30) -> Iterator[dict]:
    """A new in-memory moto account bootstrapped as the local stage, with the per-container
    caches (AWS clients, the product catalog) dropped on the way in and out: the tests', the
    fault simulator's and the benchmarks' starting point. Yields what `bootstrap` created."""
    from moto import mock_aws

    from chalicelib.loans import catalog

    with mock_aws():
        aws.reset()
        catalog.clear_cache()
        try:
            yield bootstrap("local", local_visibility=local_visibility)
        finally:
            aws.reset()
            catalog.clear_cache()
