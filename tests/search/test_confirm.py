"""The confirmation stage's choices and verdict on known scores (no Ray, no training)."""

import csv
import json

import pytest

from autosoft.errors import AutosoftError
from autosoft.search.confirm import (Candidate, Confirmed, judge, pick_candidates, reuse_runs, summarize,
                                     write_outputs)


def _policy(m):
    return {"version": 1, "kind": "subpolicies", "subpolicies": [[["Rotate", 0.5, m]]]}


TRIALS = [
    {"number": 0, "score": 0.60, "policy": {}, "fixed_policy": "baseline"},
    {"number": 1, "score": 0.58, "policy": {}, "fixed_policy": "trivialaugment"},
    {"number": 2, "score": 0.66, "policy": _policy(0.1), "fixed_policy": None},
    {"number": 3, "score": 0.64, "policy": _policy(0.2), "fixed_policy": None},
    {"number": 4, "score": 0.66, "policy": _policy(0.1), "fixed_policy": None},  # the same policy as trial 2
    {"number": 5, "score": 0.63, "policy": _policy(0.3), "fixed_policy": None},
]


def test_pick_top_k_distinct_then_baselines():
    picked = pick_candidates(TRIALS, k=2, maximize=True, baselines=["baseline", "trivialaugment"])
    assert [c.name for c in picked] == ["trial-2", "trial-3", "baseline", "trivialaugment"]
    assert [c.kind for c in picked] == ["searched", "searched", "baseline", "baseline"]
    assert picked[2].proxy_score == 0.60 and picked[2].policy["name"] == "baseline"
    assert [c.name for c in pick_candidates(TRIALS, k=10, maximize=True, baselines=[])] == \
        ["trial-2", "trial-3", "trial-5"]
    assert [c.name for c in pick_candidates(TRIALS, k=1, maximize=False, baselines=[])] == ["trial-5"]


def _confirmed(name, kind, scores, proxy=None):
    return Confirmed(Candidate(name, {}, kind, proxy), list(scores), seeds=list(range(len(scores))))


def test_a_searched_winner_and_its_margin():
    group = [_confirmed("trial-2", "searched", [0.75, 0.77], 0.66), _confirmed("trial-3", "searched", [0.73, 0.73], 0.64),
             _confirmed("baseline", "baseline", [0.74, 0.74], 0.60), _confirmed("trivialaugment", "baseline", [0.70, 0.72], 0.58)]
    v = judge(group, maximize=True, metric="val_acc")
    assert v.winner.candidate.name == "trial-2" and v.searched_won and v.best_baseline.candidate.name == "baseline"
    # paired by seed: differences +0.01 and +0.03, mean 0.02, standard error 0.01
    assert v.margin == pytest.approx(0.02) and v.margin_se == pytest.approx(0.01) and v.paired_seeds == 2
    assert not v.separated  # t = 2 at 1 degree of freedom: not below the 5% one-sided critical 6.31
    assert ("beats the best baseline by +2.00 ± 1.00 points of val_acc, paired over 2 seeds "
            "(not separated by a one-sided paired t-test at 0.05)") in v.text
    assert v.proxy_rank_correlation == pytest.approx(0.8)  # proxy order 2,3,b,t vs confirmed 2,b,3,t
    assert v.proxy_ranked == 4


def test_no_searched_policy_beats_the_best_baseline():
    group = [_confirmed("trial-2", "searched", [0.70, 0.72]), _confirmed("baseline", "baseline", [0.74, 0.75])]
    v = judge(group, maximize=True, metric="val_acc")
    assert v.winner.candidate.name == "baseline" and not v.searched_won
    assert v.text.startswith("no searched policy beat the best baseline: baseline 74.50 ± 0.71 (2 seeds)")
    # differences -0.04 and -0.03: t = 7 at 1 degree of freedom, beyond the critical 6.31
    assert v.text.endswith("(-3.50 ± 0.50 points of val_acc, paired over 2 seeds (separated by a one-sided "
                           "paired t-test at 0.05)); exporting baseline") and v.proxy_rank_correlation is None
    assert v.proxy_ranked == 0  # no proxy scores
    within = judge([_confirmed("trial-2", "searched", [0.76, 0.72]), _confirmed("baseline", "baseline", [0.735, 0.735])],
                   maximize=True, metric="val_acc")
    assert within.searched_won and "+0.50 ± 2.00 points" in within.text and "(not separated" in within.text
    apart = judge([_confirmed("trial-2", "searched", [0.76, 0.78, 0.77, 0.79]),
                   _confirmed("baseline", "baseline", [0.74, 0.755, 0.75, 0.77])], maximize=True, metric="val_acc")
    # seed-to-seed spread 1.3 points each, yet the paired differences (2, 2.5, 2, 2) separate them
    assert apart.separated and "+2.13 ± 0.13 points of val_acc, paired over 4 seeds (separated" in apart.text
    one_seed = judge([_confirmed("trial-2", "searched", [0.217]), _confirmed("baseline", "baseline", [0.203])],
                     maximize=True, metric="val_acc")
    assert one_seed.searched_won and one_seed.margin_se is None
    assert "by +1.40 points of val_acc (with one seed in common no spread is measured, so this may be noise" \
        in one_seed.text
    with pytest.raises(AutosoftError, match="no run finished"):
        judge([_confirmed("trial-2", "searched", [])], maximize=True, metric="val_acc")


def test_summarize_reads_finals_and_outputs_are_written(tmp_path):
    cands = [Candidate("trial-2", {}, "searched", 0.66), Candidate("baseline", {}, "baseline", 0.6)]
    finals = {("trial-2", 0): {"val_acc": 0.7, "val_ece": 0.05}, ("trial-2", 1): {"val_acc": 0.8, "val_ece": 0.04},
              ("baseline", 0): {"val_acc": 0.75, "val_ece": 0.1}}
    conf = summarize(cands, finals, "val_acc")
    assert conf[0].scores == [0.7, 0.8] and conf[0].mean == pytest.approx(0.75) and conf[1].std == 0.0
    v = judge(conf, maximize=True, metric="val_acc")
    write_outputs(conf, v, tmp_path, "val_acc", True)
    with open(tmp_path / "confirm.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["policy"] for r in rows] == ["trial-2", "baseline"] and rows[0]["scores"] == "0.7000 0.8000"
    assert rows[0]["winner"] == "False" and rows[1]["winner"] == "True"  # 0.75 vs 0.75: the baseline keeps a tie
    assert float(rows[0]["val_ece_mean"]) == pytest.approx(0.045) and float(rows[1]["val_ece_mean"]) == pytest.approx(0.1)
    assert (tmp_path / "confirm.png").stat().st_size > 0


def _run(folder, config: dict, policy: dict, final: dict | None):
    """A run folder as `autosoft train` writes it (config.json, a checkpoint, final.json if finished)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"train": config, "policy": policy}))
    (folder / "checkpoint.pt").write_bytes(b"weights")
    if final is not None:
        (folder / "final.json").write_text(json.dumps(final))


def test_reuse_copies_only_finished_runs_of_the_same_policy_seed_and_config(tmp_path):
    from autosoft.policy import load_policy
    from autosoft.search.settings import check_reuse_folders
    from autosoft.train import TrainConfig
    config = {**TrainConfig(epochs=3, train_size=500, val_size=100).to_dict()}
    seeded = lambda seed, **kw: TrainConfig.from_dict({**config, "seed": seed, **kw}).to_dict()  # noqa: E731
    base, other = load_policy("baseline").to_dict(), load_policy("randaugment").to_dict()
    source = tmp_path / "search-joint"
    (source / "search.json").parent.mkdir()
    (source / "search.json").write_text("{}")
    _run(source / "confirm" / "baseline-s0", seeded(0), base, {"val_acc": 0.61})
    _run(source / "confirm" / "baseline-s1", seeded(1, lr=0.05), base, {"val_acc": 0.62})   # another lr
    _run(source / "confirm" / "trial-3-s0", seeded(0), other, {"val_acc": 0.63})            # another trial-3
    _run(source / "confirm" / "randaugment-s1", seeded(1), other, None)                   # not finished
    here = tmp_path / "random-search" / "confirm"
    _run(here / "randaugment-s0", seeded(0), other, {"val_acc": 0.5})                     # this search's own
    cands = [Candidate("trial-3", load_policy("trivialaugment").to_dict(), "searched", 0.6),
             Candidate("baseline", base, "baseline", None), Candidate("randaugment", other, "baseline", None)]

    copied = reuse_runs(here, cands, config, [0, 1], check_reuse_folders([source]), gpus=0)
    assert copied == ["baseline-s0"]
    assert json.loads((here / "baseline-s0" / "final.json").read_text()) == {"val_acc": 0.61}
    assert json.loads((here / "baseline-s0" / "reused_from.json").read_text())["source"].endswith("baseline-s0")
    assert not (here / "baseline-s0" / "checkpoint.pt").exists() and (source / "confirm/baseline-s0/checkpoint.pt").exists()
    assert json.loads((here / "randaugment-s0" / "final.json").read_text()) == {"val_acc": 0.5}  # untouched
    assert sorted(p.name for p in here.iterdir()) == ["baseline-s0", "randaugment-s0"]
    assert reuse_runs(here, cands, config, [0, 1], [source], gpus=0) == []  # copied once
    with pytest.raises(AutosoftError, match="--reuse-confirmation .*confirm: not a search's output folder"):
        check_reuse_folders([source / "confirm"])
