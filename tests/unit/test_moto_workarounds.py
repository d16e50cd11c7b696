"""The local stack's moto work-arounds keep moto's answers: a cancelled transaction still
rolls back every item it touched (updated, replaced, created or deleted) without copying a
table, and nothing is tracked any more. Run in a fresh interpreter:
the patches are for the local stack's process, not for this test run's moto."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent('''
    import os
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(var, None)
    import copy
    import boto3
    from moto import mock_aws
    from infra import moto_workarounds
    moto_workarounds.install()
    moto_workarounds.install()  # once is enough; twice is harmless
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table

    with mock_aws():
        ddb = boto3.client("dynamodb")
        for name, keys in (("pairs", [("pk", "HASH"), ("sk", "RANGE")]), ("singles", [("id", "HASH")])):
            ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
                             KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys])
        for n in range(50):
            ddb.put_item(TableName="pairs", Item={"pk": {"S": "p"}, "sk": {"S": f"{n:03d}"}, "v": {"N": str(n)}})
        ddb.put_item(TableName="singles", Item={"id": {"S": "line"}, "drawn": {"N": "5"}})
        before = {t: ddb.scan(TableName=t)["Items"] for t in ("pairs", "singles")}

        # an update, a put over an existing item and a new item, then a failed condition: all undone
        try:
            ddb.transact_write_items(TransactItems=[
                {"Update": {"TableName": "singles", "Key": {"id": {"S": "line"}},
                            "UpdateExpression": "SET drawn = drawn + :d", "ExpressionAttributeValues": {":d": {"N": "7"}}}},
                {"Put": {"TableName": "pairs", "Item": {"pk": {"S": "p"}, "sk": {"S": "007"}, "v": {"N": "-1"}}}},
                {"Put": {"TableName": "pairs", "Item": {"pk": {"S": "p"}, "sk": {"S": "new"}}}},
                {"ConditionCheck": {"TableName": "pairs", "Key": {"pk": {"S": "p"}, "sk": {"S": "001"}},
                                    "ConditionExpression": "attribute_not_exists(pk)"}},
            ])
            raise AssertionError("the transaction should have been cancelled")
        except ddb.exceptions.TransactionCanceledException:
            pass
        after = {t: ddb.scan(TableName=t)["Items"] for t in ("pairs", "singles")}
        assert after == before, (after, before)

        # a delete, a new partition and a new single item, then a failed condition: all undone,
        # and the tables are the same objects (no copy of a whole table was made)
        from moto.dynamodb.models import dynamodb_backends
        backend = dynamodb_backends["123456789012"]["us-east-1"]
        tables = dict(backend.tables)
        try:
            ddb.transact_write_items(TransactItems=[
                {"Delete": {"TableName": "pairs", "Key": {"pk": {"S": "p"}, "sk": {"S": "002"}}}},
                {"Put": {"TableName": "pairs", "Item": {"pk": {"S": "q"}, "sk": {"S": "000"}}}},
                {"Put": {"TableName": "singles", "Item": {"id": {"S": "other"}}}},
                {"ConditionCheck": {"TableName": "singles", "Key": {"id": {"S": "line"}},
                                    "ConditionExpression": "drawn > :big", "ExpressionAttributeValues": {":big": {"N": "99"}}}},
            ])
            raise AssertionError("the transaction should have been cancelled")
        except ddb.exceptions.TransactionCanceledException:
            pass
        assert {t: ddb.scan(TableName=t)["Items"] for t in ("pairs", "singles")} == before
        assert all(backend.tables[name] is table for name, table in tables.items())
        assert ddb.query(TableName="pairs", KeyConditionExpression="pk = :q",
                         ExpressionAttributeValues={":q": {"S": "q"}})["Count"] == 0

        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": "singles", "Key": {"id": {"S": "line"}},
                        "UpdateExpression": "SET drawn = drawn + :d", "ExpressionAttributeValues": {":d": {"N": "7"}}}},
            {"Put": {"TableName": "pairs", "Item": {"pk": {"S": "p"}, "sk": {"S": "new"}}}},
            {"Delete": {"TableName": "pairs", "Key": {"pk": {"S": "p"}, "sk": {"S": "003"}}}}])
        assert ddb.get_item(TableName="singles", Key={"id": {"S": "line"}})["Item"]["drawn"] == {"N": "12"}
        assert ddb.scan(TableName="pairs")["Count"] == 50

        # nothing kept for moto's dashboard
        assert Item.instances_tracked == [] and Table.instances_tracked == []
        # a deep copy outside a transaction is still a full one
        table = backend.tables["pairs"]
        clone = copy.deepcopy(table)
        assert all(clone.items[h][r] is not table.items[h][r] for h in table.items for r in table.items[h])
    print("ok")
''')


def test_a_cancelled_transaction_still_rolls_back_and_nothing_is_tracked():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
