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
transaction keeps an undo log instead of copies of its tables: a deep copy of each item it
names (or that it was absent), taken before it runs and put back if it fails, so a rollback
still restores every item exactly at a cost that does not grow with the table. (A first
version copied the table's item mapping and shared the items: that still rehashed every key
of the table, about 5 µs an item, for each transaction.) Checked against the moto release pinned in requirements-dev.txt (5.2.x); each patch
refuses to install when the code it replaces has changed shape.
"""
from __future__ import annotations

import copy
import threading
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
    """moto's TransactWriteItems with an undo log of the items it touches instead of a copy of
    each table (work-around 2)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    transact = DynamoDBBackend.transact_write_items
    source = _source(transact)
    if "copy.deepcopy(" not in source or "self.tables[table_name] = original_table_state[table_name]" not in source \
            or hasattr(Table, "__deepcopy__"):
        raise RuntimeError("moto's transact_write_items changed: review infra/moto_workarounds.py")
    running = threading.local()  # set while this thread runs a transaction

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        undo = _undo_log(self, transact_items)
        running.active = True
        try:
            return transact(self, transact_items)
        except BaseException:
            # moto "restored" each table from its backup, which is the table itself (below):
            # put the touched items back as they were.
            for table, hash_value, range_value, saved in reversed(undo):
                _put_back(table, hash_value, range_value, saved)
            raise
        finally:
            running.active = False

    def table_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        if getattr(running, "active", False):
            return self  # the transaction's "backup": the undo log above does its work
        clone = object.__new__(type(self))  # any other deep copy (backups, restores): a full one
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    Table.__deepcopy__ = table_deepcopy  # type: ignore[attr-defined]


_ABSENT = object()


def _undo_log(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    """(table, hash key, range key, a deep copy of the item or _ABSENT) for every item the
    transaction names, taken before it runs."""
    undo = []
    for entry in transact_items:
        for op_type, op in entry.items():
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            key = ({a: op["Item"][a] for a in table.table_key_attrs if a in op.get("Item", {})}
                   if op_type == "Put" else op.get("Key") or {})
            if table.hash_key_attr not in key:
                continue
            hash_value = _dynamo(key[table.hash_key_attr])
            range_value = _dynamo(key.get(table.range_key_attr)) if table.range_key_attr else None
            if table.range_key_attr:
                found = table.items.get(hash_value, {}).get(range_value, _ABSENT)
            else:
                found = table.items.get(hash_value, _ABSENT)
            undo.append((table, hash_value, range_value, found if found is _ABSENT else copy.deepcopy(found)))
    return undo


def _put_back(table: Any, hash_value: Any, range_value: Any, saved: Any) -> None:
    if table.range_key_attr:
        partition = table.items.get(hash_value)
        if saved is not _ABSENT:
            table.items.setdefault(hash_value, {})[range_value] = saved
        elif partition is not None:
            partition.pop(range_value, None)
            if not partition:
                del table.items[hash_value]
    elif saved is not _ABSENT:
        table.items[hash_value] = saved
    else:
        table.items.pop(hash_value, None)


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
