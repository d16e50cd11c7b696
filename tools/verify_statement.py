"""Check a saved loan statement offline, with SHA-256 and the Python standard library alone.

    python tools/verify_statement.py statement.json [--root 2027-01-10=<hex>]... [--roots roots.json]

`statement.json` is what `GET /v1/loans/{id}/statement` returns; `roots.json` is
`{"2027-01-10": "<hex>", ...}`. The rules are in docs/LEDGER.md. This file is a second,
independent implementation of them: it shares no code with the server.

What it proves:
- the entries form one unbroken chain: seq runs 1..n, the first prev_hash is 64 zeros, each
  prev_hash is the previous entry's hash, and each hash is SHA-256(prev_hash + canonical JSON);
- every entry balances (total debit = total credit = `amount`) and `head` is the last hash;
- each anchor's `head` is the last entry of the anchor's day (Asia/Shanghai), and its Merkle
  proof leads from leaf(loan_id, head) to the anchor's root;
- every root you supply (--root, --roots) is the statement's root for that day.

What it does not prove: that the roots in the statement are the ones the lender published.
A lender who rewrites history can rebuild every hash, proof and root to match. Trust comes
from roots you get somewhere the lender cannot rewrite: the S3 Object Lock copy of the daily
anchors, or a root you saved earlier. Without supplied roots, a pass only means the statement
is internally consistent. Nor can it see an entry that was never posted at all.

Exit status: 0 everything holds, 1 something is wrong (one line per problem), 2 unreadable input.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import date, datetime, timedelta, timezone

ZEROS = "0" * 64
SHANGHAI = timezone(timedelta(hours=8))  # no daylight saving since 1991


class Unreadable(Exception):
    """The input is not a statement (or a roots file) at all."""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def encode(value) -> str:
    """Canonical JSON by hand: keys sorted, no spaces, integers as digits, UTF-8 text."""
    if isinstance(value, dict):
        return "{" + ",".join(encode(k) + ":" + encode(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    if is_int(value):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # string escaping only
    raise ValueError(f"{value!r} has no canonical form (money is integer fen)")


def entry_hash(loan_id: str, e: dict) -> str:
    body = {"amount": e["amount"], "at": e["at"], "entry_id": e["entry_id"], "kind": e["kind"],
            "lines": [{"account": l["account"], "credit": l["credit"], "debit": l["debit"]}
                      for l in e["lines"]],
            "loan_id": loan_id, "seq": e["seq"]}
    return sha256_hex(e["prev_hash"] + encode(body))


def merkle_root(loan_id: str, head: str, proof: list) -> str:
    current = sha256_hex(f"leaf:{loan_id}:{head}")
    for step in proof:
        if step["side"] == "left":
            current = sha256_hex("node:" + step["hash"] + current)
        elif step["side"] == "right":
            current = sha256_hex("node:" + current + step["hash"])
        else:
            raise ValueError(f"a proof step's side is {step['side']!r}")
    return current


def day_of(at: str) -> str:
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is not None:
        moment = moment.astimezone(SHANGHAI)
    return moment.date().isoformat()


def check_entries(loan_id: str, entries: list) -> tuple[list[str], list[tuple]]:
    """Problems of the chain, and (day, hash, seq, name) of each entry, in chain order."""
    problems: list[str] = []
    seen: list[tuple] = []
    previous = ZEROS
    for place, e in enumerate(entries, start=1):
        name = f"entry {e.get('entry_id')} (seq {e.get('seq')})" if isinstance(e, dict) else f"entry at place {place}"
        try:
            lines = e["lines"]
            debit = sum(l["debit"] for l in lines)
            credit = sum(l["credit"] for l in lines)
            if not all(is_int(l[k]) and l[k] >= 0 for l in lines for k in ("debit", "credit")):
                problems.append(f"{name}: amounts are not non-negative integer fen")
            if e["seq"] != place:
                problems.append(f"{name}: is at place {place} of the chain, so its seq should be {place}")
            if e["prev_hash"] != previous:
                what = "64 zeros (first entry)" if place == 1 else "the previous entry's hash"
                problems.append(f"{name}: prev_hash is not {what}")
            if debit != credit:
                problems.append(f"{name}: does not balance (debit {debit}, credit {credit})")
            if e["amount"] != debit:
                problems.append(f"{name}: amount {e['amount']} is not its total debit {debit}")
            if entry_hash(loan_id, e) != e["hash"]:
                problems.append(f"{name}: hash does not match its content (changed after posting?)")
            seen.append((day_of(e["at"]), e["hash"], e["seq"], name))
            previous = e["hash"]
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            problems.append(f"{name}: malformed ({type(err).__name__}: {err})")
            previous = e.get("hash") if isinstance(e, dict) else None
    return problems, seen


def check_anchor(loan_id: str, a: dict, seen: list[tuple]) -> list[str]:
    where = f"anchor {a.get('date')}"
    try:
        day, head, root = a["date"], a["head"], a["root"]
        places = [i for i, (_, h, _, _) in enumerate(seen) if h == head]
        out = []
        if not places:
            out.append(f"{where}: head {head} is not the hash of any entry of the statement")
        else:
            entry_day, _, seq, name = seen[places[-1]]
            later = [n for d, _, _, n in seen[places[-1] + 1:] if d == day]
            if a.get("seq", seq) != seq:
                out.append(f"{where}: seq {a['seq']} is not the place of its head, {name}")
            if entry_day != day:
                out.append(f"{where}: head is {name}, which is of {entry_day}, not {day}")
            elif later:
                out.append(f"{where}: head is {name}, but {later[-1]} is the last entry of that day")
        if merkle_root(loan_id, head, a["proof"]) != root:
            out.append(f"{where}: the proof does not lead from the loan's head to the root {root}")
        return out
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return [f"{where}: malformed ({type(err).__name__}: {err})"]


def verify(statement: dict, roots: dict[str, str] | None = None) -> list[str]:
    """Every problem found in `statement`, checked against `roots` ({date: hex}) if given."""
    if not isinstance(statement, dict) or not isinstance(statement.get("loan_id"), str) \
            or not isinstance(statement.get("entries"), list):
        raise Unreadable("not a statement: needs a loan_id and a list of entries")
    loan_id, entries = statement["loan_id"], statement["entries"]
    problems, seen = check_entries(loan_id, entries)
    if entries and statement.get("head") != (entries[-1].get("hash") if isinstance(entries[-1], dict) else None):
        problems.append(f"head {statement.get('head')} is not the last entry's hash")
    elif not entries and statement.get("head") not in (None, ZEROS):
        problems.append(f"head {statement.get('head')} given, but the statement has no entries")
    anchors = statement.get("anchors") or []
    by_date: dict[str, dict] = {}
    for a in anchors:
        if not isinstance(a, dict):
            problems.append(f"anchor {a!r}: malformed")
            continue
        if a.get("date") in by_date:
            problems.append(f"anchor {a.get('date')}: appears twice")
        by_date[a.get("date")] = a
        problems += check_anchor(loan_id, a, seen)
    for day, given in sorted((roots or {}).items()):
        if day not in by_date:
            problems.append(f"anchor {day}: a root was given for it, but the statement has no anchor that day")
        elif str(by_date[day].get("root")).lower() != given.lower():
            problems.append(f"anchor {day}: the statement's root {by_date[day].get('root')} "
                            f"is not the root you supplied {given}")
    return problems


def read_roots(pairs: list[str], path: str | None) -> dict[str, str]:
    roots: dict[str, str] = {}
    given = []
    if path:
        with open(path, encoding="utf-8") as f:
            loaded = json.load(f)
        if not isinstance(loaded, dict):
            raise Unreadable(f"{path}: expected {{\"YYYY-MM-DD\": \"<hex>\", ...}}")
        given += list(loaded.items())
    for pair in pairs:
        day, sep, hexroot = pair.partition("=")
        if not sep:
            raise Unreadable(f"--root {pair}: expected DATE=HEX")
        given.append((day.strip(), hexroot.strip()))
    for day, hexroot in given:
        try:
            date.fromisoformat(day)
            if len(hexroot) != 64 or set(hexroot.lower()) - set("0123456789abcdef"):
                raise ValueError
        except (TypeError, ValueError):
            raise Unreadable(f"root {day}={hexroot}: expected YYYY-MM-DD=<hex>") from None
        if roots.setdefault(day, hexroot.lower()) != hexroot.lower():
            raise Unreadable(f"two different roots given for {day}")
    return roots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a loan statement's hash chain and anchors offline.")
    parser.add_argument("statement", help="the JSON saved from GET /v1/loans/{id}/statement")
    parser.add_argument("--root", action="append", default=[], metavar="DATE=HEX",
                        help="a day's Merkle root obtained independently (repeatable)")
    parser.add_argument("--roots", metavar="FILE", help='JSON {"YYYY-MM-DD": "<hex>", ...}')
    args = parser.parse_args(argv)
    try:
        roots = read_roots(args.root, args.roots)
        with open(args.statement, encoding="utf-8") as f:
            statement = json.load(f)
        problems = verify(statement, roots)
    except (OSError, ValueError, Unreadable) as err:  # json.JSONDecodeError is a ValueError
        print(f"unreadable input: {err}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    entries, anchors = len(statement["entries"]), len(statement.get("anchors") or [])
    if problems:
        print(f"FAILED: {len(problems)} problem(s) in the statement of loan {statement['loan_id']}")
        return 1
    print(f"OK: loan {statement['loan_id']}, {entries} entries, {anchors} anchors, "
          f"{len(roots)} supplied root(s) match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
