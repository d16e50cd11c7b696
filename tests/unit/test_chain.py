"""The ledger's hash chain and daily Merkle tree (chalicelib/money/chain.py): proofs hold for
every leaf, any change moves the root, the canonical JSON is byte-exact, a chain check names the
changed or missing entry, and the worked example in docs/LEDGER.md is what the code computes."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from chalicelib.money import chain, ledger

DOC = Path(__file__).resolve().parents[2] / "docs" / "LEDGER.md"


def heads_of(n: int) -> dict[str, str]:
    return {f"L{i:03d}": hashlib.sha256(f"head {i}".encode()).hexdigest() for i in range(n)}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------ Merkle tree

@pytest.mark.parametrize("n", range(1, 41))
def test_every_leaf_proves_into_the_root(n):
    heads = heads_of(n)
    root = chain.root(heads)
    for loan_id, head in heads.items():
        steps = chain.proof(heads, loan_id)
        assert chain.root_from_proof(loan_id, head, steps) == root
        assert len(steps) <= (n - 1).bit_length()  # at most the depth of the tree
        assert chain.root_from_proof(loan_id, "0" * 64, steps) != root  # the head is bound


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_changing_any_leaf_changes_the_root(n):
    heads = heads_of(n)
    root = chain.root(heads)
    for loan_id in heads:
        assert chain.root({**heads, loan_id: sha("other")}) != root
        renamed = {("X" if k == loan_id else k): v for k, v in heads.items()}
        assert chain.root(renamed) != root
    assert chain.root({**heads, "L999": sha("extra")}) != root
    if n > 1:
        assert chain.root(dict(list(heads.items())[1:])) != root


def test_leaves_are_sorted_by_loan_id_whatever_the_order_given():
    heads = heads_of(7)
    assert chain.root(dict(reversed(list(heads.items())))) == chain.root(heads)


def test_an_odd_node_is_carried_up_not_paired_with_itself():
    heads = {"B": sha("b"), "A": sha("a"), "C": sha("c")}
    a = sha("leaf:A:" + heads["A"])
    b = sha("leaf:B:" + heads["B"])
    c = sha("leaf:C:" + heads["C"])
    assert chain.root(heads) == sha("node:" + sha("node:" + a + b) + c)
    assert chain.root(heads) != sha("node:" + sha("node:" + a + b) + sha("node:" + c + c))
    assert chain.proof(heads, "C") == [{"side": "left", "hash": sha("node:" + a + b)}]
    assert chain.proof(heads, "A") == [{"side": "right", "hash": b}, {"side": "right", "hash": c}]
    assert chain.root({"A": heads["A"]}) == a  # one loan: the root is its leaf, the proof empty
    assert chain.proof({"A": heads["A"]}, "A") == []


def test_a_day_without_changes_has_the_root_of_the_empty_string():
    assert chain.root({}) == chain.EMPTY_ROOT == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# ------------------------------------------------------------------------------ entries

def test_canonical_json_is_byte_exact():
    text = chain.canonical("L7", 2, "repayment#R9", "2027-02-10T09:30:00+08:00", "repayment",
                           [{"account": "collections_clearing", "debit": 1500, "credit": 0},
                            {"account": "interest_income", "debit": 0, "credit": 500},
                            {"account": "loan_principal_receivable", "debit": 0, "credit": 1000}])
    assert text == (
        '{"amount":1500,"at":"2027-02-10T09:30:00+08:00","entry_id":"repayment#R9","kind":"repayment",'
        '"lines":[{"account":"collections_clearing","credit":0,"debit":1500},'
        '{"account":"interest_income","credit":500,"debit":0},'
        '{"account":"loan_principal_receivable","credit":1000,"debit":0}],"loan_id":"L7","seq":2}')


def test_canonical_json_writes_text_as_utf8_not_escaped():
    text = chain.canonical("贷1", 1, "x", "t", "k", [{"account": "现金", "debit": 1, "credit": 0},
                                                      {"account": "b", "debit": 0, "credit": 1}])
    assert '"account":"现金"' in text and '"loan_id":"贷1"' in text
    assert chain.entry_hash(chain.GENESIS, text) == hashlib.sha256(
        ("0" * 64 + text).encode("utf-8")).hexdigest()


def test_an_unbalanced_entry_has_no_canonical_form():
    with pytest.raises(ValueError, match="balance"):
        chain.canonical("L1", 1, "x", "t", "k", [{"account": "a", "debit": 2, "credit": 0},
                                                  {"account": "b", "debit": 0, "credit": 1}])


def build(loan_id: str = "L1", n: int = 4) -> list[chain.Link]:
    """A chain of a disbursement, repayments and a penalty, as the stores post it."""
    journal = [ledger.disbursement(loan_id, 100_000)]
    for i in range(2, n + 1):
        journal.append(ledger.penalty_accrual(loan_id, 1, f"2027-02-{i:02d}", 30 + i) if i % 3 == 0 else
                       ledger.repayment(f"R{i}", 10_000 + i, principal=9_000, interest=1_000 + i,
                                        penalty_posted=0, penalty_unposted=0))
    links: list[chain.Link] = []
    for seq, entry in enumerate(journal, start=1):
        prev = links[-1] if links else None
        links.append(chain.link(loan_id, seq, entry.entry_id, f"2027-02-{seq:02d}T10:00:00+08:00", entry.cause,
                                entry.to_json(), prev.hash if prev else chain.GENESIS,
                                prev.entry_id if prev else None))
    return links


def with_(l: chain.Link, **changes) -> chain.Link:
    return chain.Link(**{**l.__dict__, **changes})


def test_an_intact_chain_has_no_break_in_any_order():
    links = build(n=6)
    assert chain.check_chain("L1", links, length=6, head=links[-1].hash, head_entry=links[-1].entry_id) == []
    assert chain.check_chain("L1", list(reversed(links)), length=6) == []
    assert chain.check_chain("L1", []) == []


def test_a_changed_amount_names_its_entry():
    links = build()
    lines = [dict(l) for l in links[1].lines]
    lines[0]["debit"] += 100
    lines[1]["credit"] += 100  # still balanced: only the hash can tell
    links[1] = with_(links[1], lines=tuple(lines))
    breaks = chain.check_chain("L1", links)
    assert [(b.entry_id, "changed after posting" in b.why) for b in breaks] == [(links[1].entry_id, True)]


def test_an_unbalanced_change_is_reported_as_such():
    links = build()
    lines = [dict(l) for l in links[2].lines]
    lines[0]["debit"] += 1
    links[2] = with_(links[2], lines=tuple(lines))
    breaks = chain.check_chain("L1", links)
    assert [b.entry_id for b in breaks] == [links[2].entry_id] and "not balanced" in breaks[0].why


def test_a_deleted_middle_entry_is_named_by_the_next_ones_prev_entry_id():
    links = build()
    gone = links.pop(1)
    breaks = chain.check_chain("L1", links)
    assert [b.entry_id for b in breaks] == [gone.entry_id]
    assert "missing: entry 2 is gone" in breaks[0].why and links[1].entry_id in breaks[0].why


def test_a_deleted_last_entry_is_named_by_the_loans_head_entry():
    links = build()
    assert chain.check_chain("L1", links[:-1]) == []  # nothing left behind shows it ...
    breaks = chain.check_chain("L1", links[:-1], length=4, head=links[-1].hash, head_entry=links[-1].entry_id)
    assert [b.entry_id for b in breaks] == [links[-1].entry_id]  # ... but the loan's own record does
    assert "gone from the end" in breaks[0].why


def test_a_duplicated_place_is_reported():
    links = build()
    copy = with_(links[2], entry_id="repayment#forged")
    breaks = chain.check_chain("L1", links[:3] + [copy] + links[3:])
    assert "repayment#forged" in {b.entry_id for b in breaks}
    assert any("a second entry at place 3" in b.why for b in breaks)


def test_swapped_places_break_both_entries():
    links = build()
    links[1], links[2] = with_(links[1], seq=3), with_(links[2], seq=2)
    breaks = chain.check_chain("L1", links)
    changed = {b.entry_id for b in breaks if "changed after posting" in b.why}
    assert changed == {links[1].entry_id, links[2].entry_id}
    assert [b.entry_id for b in breaks if "prev_hash" in b.why] == [links[2].entry_id, links[1].entry_id,
                                                                    links[3].entry_id]


def test_an_entry_of_another_loan_is_reported():
    links = build()
    links[3] = with_(links[3], loan_id="L2")
    assert any(b.entry_id == links[3].entry_id and "another loan" in b.why for b in chain.check_chain("L1", links))


# ------------------------------------------------------------------------------ the docs

def test_the_worked_example_in_the_docs_is_what_the_code_computes():
    text = DOC.read_text(encoding="utf-8")
    examples = re.findall(r"```json\n(\{\"amount\".*\})\n```\s*```text\nprev_hash +([0-9a-f]{64})\n"
                          r"hash +([0-9a-f]{64})\n```", text)
    assert len(examples) == 2, "docs/LEDGER.md: the two worked entries (canonical JSON, prev_hash, hash)"
    previous = chain.GENESIS
    for canonical_json, prev_hash, entry_hash in examples:
        e = json.loads(canonical_json)
        assert chain.canonical(e["loan_id"], e["seq"], e["entry_id"], e["at"], e["kind"], e["lines"]) == canonical_json
        assert prev_hash == previous
        assert chain.entry_hash(prev_hash, canonical_json) == entry_hash == sha(prev_hash + canonical_json)
        previous = entry_hash
    first = json.loads(examples[0][0])
    assert first["lines"] == [dict(sorted(l.items())) for l in ledger.disbursement(first["loan_id"], first["amount"]).to_json()]

    tree = re.search(r"```text\n(day \d{4}-\d\d-\d\d.*?)```", text, re.S).group(1)
    heads = dict(re.findall(r"^head (\S+) +([0-9a-f]{64})$", tree, re.M))
    leaves = dict(re.findall(r"^leaf (\S+) +([0-9a-f]{64})$", tree, re.M))
    assert len(heads) == 3 and heads["L1001"] == examples[0][2]  # L1001's head that day: its disbursement
    assert leaves == {k: chain.leaf(k, h) for k, h in heads.items()}
    nodes = re.findall(r"^node +([0-9a-f]{64})$", tree, re.M)
    order = sorted(heads)
    assert nodes == [chain.node(leaves[order[0]], leaves[order[1]])]
    doc_root = re.search(r"^root +([0-9a-f]{64})$", tree, re.M).group(1)
    assert doc_root == chain.root(heads) == chain.node(nodes[0], leaves[order[2]])
    proof = json.loads(re.search(r"```json\n(\[\{\"side\".*?\])\n```", text, re.S).group(1))
    assert proof == chain.proof(heads, "L1001")
    assert chain.root_from_proof("L1001", heads["L1001"], proof) == doc_root
    assert f"--root 2027-01-10={doc_root}" in text  # the verifier's example uses the same root
    assert chain.EMPTY_ROOT in text


def test_a_days_proofs_are_computed_from_one_tree_not_one_tree_each(counted_hashes):
    """Anchoring writes every changed loan's proof: building the tree again for each of them
    was n² hashes (a day of 460,000 changed loans at 10 million borrowers would never end).
    `proofs` builds the levels once: 2n hashes for n leaves, the same proofs as `proof`."""
    heads = {f"L{n:05d}": chain.entry_hash(chain.GENESIS, str(n)) for n in range(1, 1001)}
    counted_hashes["hashes"] = 0
    every = chain.proofs(heads)
    assert counted_hashes["hashes"] <= 2 * len(heads)
    root = chain.root(heads)
    for loan_id in ("L00001", "L00500", "L01000"):
        assert every[loan_id] == chain.proof(heads, loan_id)
    assert all(chain.root_from_proof(k, heads[k], steps) == root for k, steps in every.items())
    assert chain.proofs({}) == {}
