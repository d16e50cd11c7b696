"""tools/verify_statement.py, the borrower's offline check, against statements built with the
server's own chain code (chalicelib/money/chain.py): an intact statement passes, each kind of
tampering fails and is named, and the tool needs nothing but the standard library."""
from __future__ import annotations

import ast
import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from chalicelib.money import chain, ledger

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "verify_statement.py"
_spec = importlib.util.spec_from_file_location("verify_statement", TOOL)
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

# Per loan: (day, time, journal entry) in posting order, over three days.
BOOK = {
    "L-a": [("2027-01-10", "10:00:00", ledger.disbursement("L-a", 500_000)),
            ("2027-01-10", "15:30:00", ledger.repayment("Ra1", 1_000, principal=1_000, interest=0,
                                                        penalty_posted=0, penalty_unposted=0)),
            ("2027-01-11", "09:00:00", ledger.repayment("Ra2", 20_000, principal=18_000, interest=2_000,
                                                        penalty_posted=0, penalty_unposted=0)),
            ("2027-01-12", "00:05:00", ledger.penalty_accrual("L-a", 1, "2027-01-11", 120)),
            ("2027-01-12", "18:00:00", ledger.repayment("Ra3", 30_120, principal=28_000, interest=2_000,
                                                        penalty_posted=120, penalty_unposted=0))],
    "L-b": [("2027-01-10", "11:00:00", ledger.disbursement("L-b", 300_000)),
            ("2027-01-12", "12:00:00", ledger.repayment("Rb1", 5_000, principal=4_000, interest=1_000,
                                                        penalty_posted=0, penalty_unposted=0))],
    "L-c": [("2027-01-10", "23:59:59", ledger.disbursement("L-c", 100_000)),
            ("2027-01-11", "00:00:00", ledger.repayment("Rc1", 100_500, principal=100_000, interest=500,
                                                        penalty_posted=0, penalty_unposted=0))],
    "L-d": [("2027-01-11", "08:00:00", ledger.disbursement("L-d", 800_000)),
            ("2027-01-12", "10:00:00", ledger.repayment("Rd1", 9_000, principal=0, interest=9_000,
                                                        penalty_posted=0, penalty_unposted=0))],
}
DAYS = ["2027-01-10", "2027-01-11", "2027-01-12"]


def build_book() -> tuple[dict[str, list[chain.Link]], dict[str, dict[str, tuple[int, str]]]]:
    """Every loan's chain, and each day's {loan_id: (seq, head)} (its last entry that day)."""
    chains: dict[str, list[chain.Link]] = {}
    days: dict[str, dict[str, tuple[int, str]]] = {d: {} for d in DAYS}
    for loan_id, postings in BOOK.items():
        links: list[chain.Link] = []
        for seq, (day, time, entry) in enumerate(postings, start=1):
            links.append(chain.link(loan_id, seq, entry.entry_id, f"{day}T{time}+08:00", entry.cause,
                                    entry.to_json(), links[-1].hash if links else chain.GENESIS))
            days[day][loan_id] = (seq, links[-1].hash)
        chains[loan_id] = links
    return chains, days


CHAINS, HEADS = build_book()
ROOTS = {day: chain.root({k: h for k, (_, h) in heads.items()}) for day, heads in HEADS.items()}


def statement(loan_id: str) -> dict:
    """What GET /v1/loans/{id}/statement answers for `loan_id`, every day anchored."""
    entries = [{"seq": l.seq, "entry_id": l.entry_id, "at": l.at, "kind": l.kind, "amount": l.amount,
                "lines": [dict(x) for x in l.lines], "prev_hash": l.prev_hash, "hash": l.hash}
               for l in CHAINS[loan_id]]
    anchors = []
    for day in DAYS:
        heads = {k: h for k, (_, h) in HEADS[day].items()}
        if loan_id in heads:
            anchors.append({"date": day, "root": ROOTS[day], "head": heads[loan_id],
                            "seq": HEADS[day][loan_id][0], "proof": chain.proof(heads, loan_id)})
    return {"loan_id": loan_id, "entries": entries, "head": entries[-1]["hash"], "anchors": anchors}


def run(tmp_path: Path, data: dict | str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "statement.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return subprocess.run([sys.executable, str(TOOL), str(path), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def root_args(roots: dict[str, str]) -> list[str]:
    return [arg for day, root in roots.items() for arg in ("--root", f"{day}={root}")]


def test_the_book_is_what_the_servers_chain_check_accepts():
    assert len(set(ROOTS.values())) == 3 and all(len(HEADS[d]) >= 3 for d in DAYS)  # real trees
    for loan_id, links in CHAINS.items():
        assert chain.check_chain(loan_id, links, length=len(links), head=links[-1].hash) == []


@pytest.mark.parametrize("loan_id", sorted(BOOK))
def test_an_intact_statement_passes(tmp_path, loan_id):
    s = statement(loan_id)
    mine = {a["date"]: a["root"] for a in s["anchors"]}
    assert tool.verify(s) == [] and tool.verify(s, mine) == []
    done = run(tmp_path, s, *root_args(mine))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK:") and done.stdout.count("\n") == 1
    (tmp_path / "roots.json").write_text(json.dumps(mine))
    assert run(tmp_path, s, "--roots", str(tmp_path / "roots.json")).returncode == 0


def failing(tmp_path: Path, s: dict, *args: str) -> str:
    """The tool's output on a statement it must refuse, the function and the CLI agreeing."""
    problems = tool.verify(s, dict(a.split("=", 1) for a in args[1::2]) if args else None)
    assert problems
    done = run(tmp_path, s, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == problems + [done.stdout.splitlines()[-1]]
    assert done.stdout.splitlines()[-1].startswith("FAILED:")
    return done.stdout


def test_a_changed_amount_is_named(tmp_path):
    s = statement("L-a")
    s["entries"][2]["amount"] += 1000
    s["entries"][2]["lines"][0]["debit"] += 1000
    s["entries"][2]["lines"][1]["credit"] += 1000  # still balanced: only the hash can tell
    out = failing(tmp_path, s)
    assert "entry repayment#Ra2 (seq 3): hash does not match its content" in out
    assert "repayment#Ra1" not in out and "penalty" not in out  # the others are intact


def test_an_amount_that_is_not_the_total_debit_is_named(tmp_path):
    s = statement("L-b")
    s["entries"][1]["amount"] = 4_000
    assert "entry repayment#Rb1 (seq 2): amount 4000 is not its total debit 5000" in failing(tmp_path, s)


def test_a_removed_entry_is_noticed_at_the_next_one(tmp_path):
    s = statement("L-a")
    del s["entries"][1]
    out = failing(tmp_path, s)
    assert "entry repayment#Ra2 (seq 3): is at place 2 of the chain" in out
    assert "entry repayment#Ra2 (seq 3): prev_hash is not the previous entry's hash" in out
    assert "anchor 2027-01-10: head" in out  # the day's anchored head is gone with it


def test_a_removed_last_entry_is_noticed_by_the_head(tmp_path):
    s = statement("L-b")
    s["entries"].pop()
    out = failing(tmp_path, s)
    assert "is not the last entry's hash" in out and "anchor 2027-01-12" in out


def test_swapped_entries_are_named(tmp_path):
    s = statement("L-a")
    s["entries"][2], s["entries"][3] = s["entries"][3], s["entries"][2]
    out = failing(tmp_path, s)
    assert "entry penalty#1#2027-01-11 (seq 4): is at place 3" in out
    assert "entry repayment#Ra2 (seq 3): is at place 4" in out


def test_a_wrong_root_given_on_the_command_line_is_named(tmp_path):
    s = statement("L-c")
    out = failing(tmp_path, s, "--root", f"2027-01-10={ROOTS['2027-01-11']}", "--root", f"2027-01-11={ROOTS['2027-01-11']}")
    assert f"anchor 2027-01-10: the statement's root {ROOTS['2027-01-10']} is not the root you supplied" in out
    assert "anchor 2027-01-11" not in out


def test_a_root_given_for_a_day_without_an_anchor_is_reported(tmp_path):
    out = failing(tmp_path, statement("L-c"), "--root", f"2027-01-12={ROOTS['2027-01-12']}")
    assert "anchor 2027-01-12: a root was given for it, but the statement has no anchor that day" in out


def test_a_rebuilt_anchor_passes_alone_but_not_against_the_published_root(tmp_path):
    """A lender who changes an entry and rebuilds the whole chain and tree fools the statement's
    own consistency, not a root published before."""
    s = statement("L-b")
    forged = chain.link("L-b", 1, "disbursement#L-b", s["entries"][0]["at"], "disbursement",
                        ledger.disbursement("L-b", 200_000).to_json(), chain.GENESIS)
    second = CHAINS["L-b"][1]
    forged2 = chain.link("L-b", 2, second.entry_id, second.at, second.kind, second.lines, forged.hash)
    for place, link in enumerate((forged, forged2)):
        s["entries"][place].update(amount=link.amount, lines=[dict(x) for x in link.lines],
                                   prev_hash=link.prev_hash, hash=link.hash)
    s["head"] = forged2.hash
    for a, link in zip(s["anchors"], (forged, forged2)):
        heads = {k: h for k, (_, h) in HEADS[a["date"]].items()} | {"L-b": link.hash}
        a.update(head=link.hash, root=chain.root(heads), proof=chain.proof(heads, "L-b"))
    assert tool.verify(s) == []
    out = failing(tmp_path, s, *root_args({"2027-01-10": ROOTS["2027-01-10"]}))
    assert "anchor 2027-01-10: the statement's root" in out


def test_a_tampered_proof_step_is_named(tmp_path):
    s = statement("L-a")
    step = s["anchors"][1]["proof"][0]
    step["hash"] = step["hash"][:-1] + ("0" if step["hash"][-1] != "0" else "1")
    out = failing(tmp_path, s)
    assert out.splitlines()[0] == (f"anchor 2027-01-11: the proof does not lead from the loan's head "
                                   f"to the root {ROOTS['2027-01-11']}")
    s = statement("L-a")
    s["anchors"][0]["proof"][0]["side"] = "left" if s["anchors"][0]["proof"][0]["side"] == "right" else "right"
    assert "anchor 2027-01-10: the proof does not lead" in failing(tmp_path, s)


def test_an_anchor_head_that_is_not_the_last_entry_of_its_day_is_named(tmp_path):
    # L-a has two entries on 2027-01-10; an anchor of the first one, with an honest proof of a
    # tree built over it, still leaves the second out of the day's record.
    early = CHAINS["L-a"][0]
    heads = {k: h for k, (_, h) in HEADS["2027-01-10"].items()} | {"L-a": early.hash}
    s = statement("L-a")
    s["anchors"][0].update(head=early.hash, seq=1, root=chain.root(heads), proof=chain.proof(heads, "L-a"))
    out = failing(tmp_path, s)
    assert out.splitlines()[0] == ("anchor 2027-01-10: head is entry disbursement#L-a (seq 1), "
                                   "but entry repayment#Ra1 (seq 2) is the last entry of that day")


def test_an_anchor_head_of_another_day_is_named(tmp_path):
    s = statement("L-c")  # 23:59:59 and 00:00:00: one second, two days
    s["anchors"][0]["head"] = s["entries"][1]["hash"]
    out = failing(tmp_path, s)
    assert "anchor 2027-01-10: head is entry repayment#Rc1 (seq 2), which is of 2027-01-11" in out


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"loan_id": "L-a"}'])
def test_unreadable_input_exits_2(tmp_path, content):
    done = run(tmp_path, content)
    assert done.returncode == 2 and "unreadable input" in done.stderr


def test_a_missing_file_or_a_bad_root_exits_2(tmp_path):
    done = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "none.json")], capture_output=True, text=True)
    assert done.returncode == 2
    assert run(tmp_path, statement("L-d"), "--root", "2027-01-11=xyz").returncode == 2
    assert run(tmp_path, statement("L-d"), "--root", "2027-01-11").returncode == 2


line = st.fixed_dictionaries({"account": st.text(max_size=12), "debit": st.integers(0, 10**12),
                              "credit": st.integers(0, 10**12)})


@given(loan_id=st.text(max_size=20), seq=st.integers(1, 10**6), entry_id=st.text(max_size=20),
       at=st.text(max_size=30), kind=st.text(max_size=12), lines=st.lists(line, max_size=4))
def test_the_tools_hash_is_the_servers_for_any_entry(loan_id, seq, entry_id, at, kind, lines):
    if sum(l["debit"] for l in lines) != sum(l["credit"] for l in lines):
        lines = lines + [{"account": "balance", "debit": max(0, sum(l["credit"] - l["debit"] for l in lines)),
                          "credit": max(0, sum(l["debit"] - l["credit"] for l in lines))}]
    server = chain.link(loan_id, seq, entry_id, at, kind, lines, chain.GENESIS)
    entry = {"seq": seq, "entry_id": entry_id, "at": at, "kind": kind, "amount": server.amount,
             "lines": copy.deepcopy(lines), "prev_hash": chain.GENESIS, "hash": server.hash}
    assert tool.entry_hash(loan_id, entry) == server.hash


def test_the_tool_imports_the_standard_library_only():
    tree = ast.parse(TOOL.read_text(encoding="utf-8"))
    modules = {alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))
    assert modules and modules <= set(sys.stdlib_module_names) | {"__future__"}, modules - set(sys.stdlib_module_names)
