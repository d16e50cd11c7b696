"""The ledger anyone can check: each loan's entries as a hash chain, each day's heads as a
Merkle tree (contract, "Ledger transparency"; the worked example is in docs/LEDGER.md).

Pure (SHA-256 and JSON only; a test keeps AWS out), so the same code builds the chains, the
anchors and the proofs, and checks them; `tools/verify_statement.py` is an independent
implementation with the standard library alone, for borrowers and auditors.

**Entry.** An entry's canonical JSON is the object

    {"amount", "at", "entry_id", "kind", "lines", "loan_id", "seq"}

with sorted keys, no spaces (separators `,` and `:`), UTF-8, integers for money: `amount` is
the entry's total debit (= its total credit) in fen, `at` the posting time as stored (ISO 8601),
`kind` the cause (`disbursement`, `repayment`, `penalty`), `lines` the balanced lines in their
posted order, each `{"account", "credit", "debit"}`, and `seq` its place in the loan's chain
(1 for the first). Its hash is

    hash = SHA-256( UTF-8( prev_hash + canonical_json ) )   (lowercase hex)

where `prev_hash` is the previous entry's hash, and 64 zeros (GENESIS) for the first.

**Anchor.** A day's anchor is the Merkle root over the heads of the chains that changed that
day (Asia/Shanghai date of `at`), one leaf per loan, sorted by loan id (code point order):

    leaf = SHA-256( UTF-8( "leaf:" + loan_id + ":" + head_hash ) )
    node = SHA-256( UTF-8( "node:" + left + right ) )      (left, right: lowercase hex)

Each level pairs its nodes left to right; an odd last node is carried up to the next level
unchanged (never paired with itself, so no two different leaf lists share a root). A day
when no chain changed has the root SHA-256 of the empty string (EMPTY_ROOT). The prefixes keep
a leaf from ever being read as a node. A proof is the list of sibling hashes from the leaf up,
each with its side: `{"side": "left"|"right", "hash"}`; a carried node adds no step.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable, Sequence

GENESIS = "0" * 64
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical(loan_id: str, seq: int, entry_id: str, at: str, kind: str,
              lines: Sequence[dict]) -> str:
    """The entry's canonical JSON (see the module's docstring)."""
    clean = [{"account": l["account"], "credit": l["credit"], "debit": l["debit"]} for l in lines]
    for l in clean:  # exactly what is stored: no conversion may make two contents hash alike
        if not isinstance(l["account"], str) or any(
                type(l[k]) is not int or l[k] < 0 for k in ("credit", "debit")):
            raise ValueError(f"entry {entry_id}: a line is not an account with integer fen")
    amount = sum(l["debit"] for l in clean)
    if amount != sum(l["credit"] for l in clean):
        raise ValueError(f"entry {entry_id} does not balance")
    return json.dumps({"amount": amount, "at": at, "entry_id": entry_id, "kind": kind,
                       "lines": clean, "loan_id": loan_id, "seq": seq},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, canonical_json: str) -> str:
    return _sha(prev_hash + canonical_json)


@dataclass(frozen=True)
class Link:
    """One entry as the chain holds it. `prev_entry_id` is not hashed: it only lets a check
    name an entry that was deleted (the hashes are what prove)."""
    loan_id: str
    seq: int
    entry_id: str
    at: str
    kind: str
    lines: tuple[dict, ...]
    prev_hash: str
    hash: str
    prev_entry_id: str | None = None

    @property
    def amount(self) -> int:
        return sum(int(l["debit"]) for l in self.lines)


def link(loan_id: str, seq: int, entry_id: str, at: str, kind: str, lines: Sequence[dict],
         prev_hash: str, prev_entry_id: str | None = None) -> Link:
    """The next entry of a chain whose head is `prev_hash` (GENESIS for the first)."""
    return Link(loan_id, seq, entry_id, at, kind, tuple(lines), prev_hash,
                entry_hash(prev_hash, canonical(loan_id, seq, entry_id, at, kind, lines)), prev_entry_id)


@dataclass(frozen=True)
class Break:
    """Something wrong in a chain: the entry it concerns (None when it cannot be named)."""
    loan_id: str
    entry_id: str | None
    why: str


def recompute(l: Link) -> str | None:
    """The hash the entry's content gives (None: its lines are not balanced integer fen)."""
    try:
        return entry_hash(l.prev_hash, canonical(l.loan_id, l.seq, l.entry_id, l.at, l.kind, l.lines))
    except (KeyError, TypeError, ValueError):
        return None


def check_chain(loan_id: str, links: Iterable[Link], *, length: int | None = None,
                head: str | None = None, head_entry: str | None = None) -> list[Break]:
    """Every break in one loan's chain, its entries given in any order. `length`, `head` and
    `head_entry` are what the loan itself records (its entry count, last hash and last entry
    id), when known: they catch a deleted last entry, which leaves no gap behind it."""
    out: list[Break] = []
    previous: Link | None = None
    for l in sorted(links, key=lambda x: x.seq):
        expected = previous.seq + 1 if previous else 1
        if l.seq > expected:
            span = f"entries {expected}-{l.seq - 1} are" if l.seq - expected > 1 else f"entry {expected} is"
            out.append(Break(loan_id, l.prev_entry_id, f"missing: {span} gone from the chain "
                                                       f"(entry {l.seq}, {l.entry_id}, follows it)"))
        elif l.seq < expected:
            out.append(Break(loan_id, l.entry_id, f"a second entry at place {l.seq} of the chain"))
        elif l.prev_hash != (previous.hash if previous else GENESIS):
            out.append(Break(loan_id, l.entry_id, "prev_hash is not the previous entry's hash"))
        if l.loan_id != loan_id:
            out.append(Break(loan_id, l.entry_id, f"entry names another loan ({l.loan_id})"))
        recomputed = recompute(l)
        if recomputed is None:
            out.append(Break(loan_id, l.entry_id, "lines are not balanced integer fen"))
        elif recomputed != l.hash:
            out.append(Break(loan_id, l.entry_id, "content does not match its hash: changed after posting"))
        previous = l
    last = previous.seq if previous else 0
    if length is not None and length > last:
        span = f"entries {last + 1}-{length} are" if length - last > 1 else f"entry {length} is"
        out.append(Break(loan_id, head_entry, f"missing: {span} gone from the end of the chain "
                                              f"(the loan records {length})"))
    elif length is not None and length < last:
        out.append(Break(loan_id, previous.entry_id, f"the loan records {length} entries, the chain has {last}"))
    elif head is not None and previous is not None and head != previous.hash:
        out.append(Break(loan_id, previous.entry_id, "the loan's recorded head is not the last entry's hash"))
    return out


# ------------------------------------------------------------------------------ Merkle tree

def leaf(loan_id: str, head_hash: str) -> str:
    return _sha(f"leaf:{loan_id}:{head_hash}")


def node(left: str, right: str) -> str:
    return _sha(f"node:{left}{right}")


def _levels(leaves: Sequence[str]) -> list[list[str]]:
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node(below[i], below[i + 1]) if i + 1 < len(below) else below[i]
                       for i in range(0, len(below), 2)])
    return levels


def root(heads: dict[str, str]) -> str:
    """The day's root over {loan_id: head hash} (EMPTY_ROOT for none)."""
    if not heads:
        return EMPTY_ROOT
    return _levels([leaf(k, heads[k]) for k in sorted(heads)])[-1][0]


def proof(heads: dict[str, str], loan_id: str) -> list[dict]:
    """The path from `loan_id`'s leaf to the root of `heads`."""
    order = sorted(heads)
    return _path(_levels([leaf(k, heads[k]) for k in order])[:-1], order.index(loan_id))


def _path(levels: list[list[str]], index: int) -> list[dict]:
    """The siblings from leaf `index` up through `levels` (the tree without its root)."""
    steps: list[dict] = []
    for level in levels:
        sibling = index ^ 1
        if sibling < len(level):
            steps.append({"side": "left" if sibling < index else "right", "hash": level[sibling]})
        index //= 2
    return steps


def proofs(heads: dict[str, str]) -> dict[str, list[dict]]:
    """Every loan's path to the root of `heads`, from one build of the tree: 2n hashes for n
    leaves (calling `proof` for each would build the tree n times)."""
    order = sorted(heads)
    levels = _levels([leaf(k, heads[k]) for k in order])[:-1] if order else []
    return {loan_id: _path(levels, index) for index, loan_id in enumerate(order)}


def root_from_proof(loan_id: str, head_hash: str, steps: Sequence[dict]) -> str:
    current = leaf(loan_id, head_hash)
    for step in steps:
        current = node(step["hash"], current) if step["side"] == "left" else node(current, step["hash"])
    return current
