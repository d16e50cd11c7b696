"""Work-arounds for moto behaviours that make a long-running local stack slow down.

`make run` keeps one moto (the embedded AWS) for hours; moto is written for tests that last
seconds. Measured with `bench/longrun_bench.py` (decisions per second, the stack's CPU time per
decision and its memory, block by block; figures in bench/README.md, with `MOTO_WORKAROUNDS=0`
for moto as released):

1. moto keeps a copy of every query result, and of every other object it ever made.
   `moto.core.common_models.BaseModel.__new__` appends each new instance to its class's
   `instances_tracked` list (it feeds the moto server's dashboard, `/moto-api/data.json`), and
   only `reset` empties those lists. DynamoDB's `Table.query` and `Table.scan` answer with
   `copy.deepcopy` of the items they found, and each copied `Item` is such a new instance: every
   item a query ever returned stays referenced for the life of the process, as do every item
   written, every SQS message and the transaction copies below. Memory grows with every
   request (reads too), and the garbage collector walks an ever larger heap.

2. moto's `TransactWriteItems` backs up each table the transaction touches with
   `copy.deepcopy(table)` before it starts, to roll back on failure: every item of the table
   is copied for every transaction. An approval writes the application and the credit line in
   one transaction, so each decision copies the whole applications table: its cost grows with
   the number of decisions made so far. (DynamoDB has no such cost.)

`install()` applies both, in the local stack's process only (tests keep moto as it is):
moto's models are no longer tracked (nothing in the local stack reads the dashboard), and a
transaction's backup of a table shares the items the transaction does not touch (they are not
changed while it runs) and copies the ones it does, so a rollback still restores every item
exactly. Checked against the moto release pinned in requirements-dev.txt (5.2.x); each patch
refuses to install when the code it replaces has changed shape.
"""
from __future__ import annotations

import copy
import threading
from collections import defaultdict
from typing import Any

_installed = False


def untrack_models() -> None:
    """moto's BaseModel without the instance tracking (work-around 1), and the lists made so
    far emptied."""
    from moto.core import common_models
    from moto.core.model_instances import reset_model_data

    base = common_models.BaseModel
    if "instances_tracked.append" not in _source(base.__new__):
        raise RuntimeError("moto's BaseModel.__new__ changed: review infra/moto_workarounds.py")

    def untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    base.__new__ = staticmethod(untracked_new)  # type: ignore[method-assign, assignment]
    reset_model_data()


def light_transaction_backups() -> None:
    """moto's TransactWriteItems backing up only the items it touches (work-around 2)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    transact = DynamoDBBackend.transact_write_items
    if "copy.deepcopy(" not in _source(transact) or hasattr(Table, "__deepcopy__"):
        raise RuntimeError("moto's transact_write_items changed: review infra/moto_workarounds.py")
    touching = threading.local()  # table name -> keys of the items the running transaction touches

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        keys: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in transact_items:
            for op_type, op in entry.items():
                table = self.tables.get(op.get("TableName"))
                if table is None:
                    continue
                if op_type == "Put":
                    keys[table.name].append({a: op["Item"][a] for a in table.table_key_attrs if a in op["Item"]})
                elif "Key" in op:
                    keys[table.name].append(op["Key"])
        touching.keys = keys
        try:
            return transact(self, transact_items)
        finally:
            touching.keys = None

    def table_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        keys = getattr(touching, "keys", None)
        if keys is None:  # any other deep copy (backups, restores): moto's full copy
            clone = object.__new__(type(self))
            memo[id(self)] = clone
            for name, value in self.__dict__.items():
                setattr(clone, name, copy.deepcopy(value, memo))
            return clone
        clone = copy.copy(self)
        clone.items = defaultdict(dict, {h: dict(v) if isinstance(v, dict) else v for h, v in self.items.items()})
        for key in keys.get(self.name, []):
            hash_value = _dynamo(key.get(self.hash_key_attr))
            range_value = _dynamo(key.get(self.range_key_attr)) if self.range_key_attr else None
            if self.range_key_attr:
                found = clone.items.get(hash_value, {}).get(range_value)
                if found is not None:
                    clone.items[hash_value][range_value] = copy.deepcopy(found)
            elif hash_value in clone.items:
                clone.items[hash_value] = copy.deepcopy(clone.items[hash_value])
        return clone

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    Table.__deepcopy__ = table_deepcopy  # type: ignore[attr-defined]


def _dynamo(value: Any) -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType
    return None if value is None else DynamoType(value)


def _source(function: Any) -> str:
    import inspect
    return inspect.getsource(function)


def install() -> None:
    """Both work-arounds, once per process."""
    global _installed
    if not _installed:
        untrack_models()
        light_transaction_backups()
        _installed = True
