"""The seeded fault simulator (tests/proof/simulator.py) over a few seeds, sized for CI.

`make soak` runs many more (SEEDS=200); `SIM_SEEDS`, `SIM_FIRST` and `SIM_STEPS` size this file.
A failure prints the seed and its step log; `python -m tests.proof.simulator --seed N -v`
replays it exactly.
"""
from __future__ import annotations

import os

import pytest
from chalice.test import Client

import app as app_module
from tests.conftest import ROOT
from tests.proof import simulator
from tests.proof.world import World

SEEDS = int(os.environ.get("SIM_SEEDS", "4"))
FIRST = int(os.environ.get("SIM_FIRST", "0"))
STEPS = int(os.environ.get("SIM_STEPS", "40"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One moto account for the module; each seed starts from an emptied one."""
    from infra.bootstrap import fresh_moto_account

    os.environ["OUTBOX_PATH"] = str(tmp_path_factory.mktemp("sim") / "outbox.jsonl")
    with fresh_moto_account():
        with Client(app_module.app, stage_name="local", project_dir=str(ROOT)) as client:
            with World(client, simulator.USERS) as shared:
                yield shared


@pytest.mark.parametrize("seed", range(FIRST, FIRST + SEEDS))
def test_a_seeded_run_with_faults_keeps_every_invariant(world, seed):
    report = simulator.run(seed, STEPS, world=world)
    assert report.ok, f"replay: python -m tests.proof.simulator --seed {seed} --steps {STEPS} -v\n{report}"


def test_a_seed_replays_exactly(world):
    first = simulator.run(7, 15, world=world)
    again = simulator.run(7, 15, world=world)
    assert first.ok and again.ok, f"{first}\n{again}"
    assert first.log == again.log
    assert first.counts == again.counts
