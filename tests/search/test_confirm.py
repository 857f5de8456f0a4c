"""The confirmation stage's choices and verdict on known scores (no Ray, no training)."""

import csv

import pytest

from autosoft.errors import AutosoftError
from autosoft.search.confirm import Candidate, Confirmed, judge, pick_candidates, summarize, write_outputs


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
    return Confirmed(Candidate(name, {}, kind, proxy), list(scores))


def test_a_searched_winner_and_its_margin():
    group = [_confirmed("trial-2", "searched", [0.75, 0.77], 0.66), _confirmed("trial-3", "searched", [0.73, 0.73], 0.64),
             _confirmed("baseline", "baseline", [0.74, 0.74], 0.60), _confirmed("trivialaugment", "baseline", [0.70, 0.72], 0.58)]
    v = judge(group, maximize=True, metric="val_acc")
    assert v.winner.candidate.name == "trial-2" and v.searched_won and v.best_baseline.candidate.name == "baseline"
    assert v.margin == pytest.approx(0.02) and v.pooled_std == pytest.approx((0.02 ** 2 / 2 / 2) ** 0.5)
    assert "beats the best baseline by +2.00 points of val_acc (more than the pooled seed std of 1.00)" in v.text
    assert v.proxy_rank_correlation == pytest.approx(0.8)  # proxy order 2,3,b,t vs confirmed 2,b,3,t
    assert v.proxy_ranked == 4


def test_no_searched_policy_beats_the_best_baseline():
    group = [_confirmed("trial-2", "searched", [0.70, 0.72]), _confirmed("baseline", "baseline", [0.74, 0.75])]
    v = judge(group, maximize=True, metric="val_acc")
    assert v.winner.candidate.name == "baseline" and not v.searched_won
    assert v.text.startswith("no searched policy beat the best baseline: baseline 74.50 ± 0.71 (2 seeds)")
    assert v.text.endswith("(-3.50 points); exporting baseline") and v.proxy_rank_correlation is None
    assert v.proxy_ranked == 0  # no proxy scores
    within = judge([_confirmed("trial-2", "searched", [0.76, 0.72]), _confirmed("baseline", "baseline", [0.735, 0.735])],
                   maximize=True, metric="val_acc")
    assert within.searched_won and "(within the pooled seed std" in within.text
    one_seed = judge([_confirmed("trial-2", "searched", [0.217]), _confirmed("baseline", "baseline", [0.203])],
                     maximize=True, metric="val_acc")
    assert one_seed.searched_won and one_seed.pooled_std is None
    assert "by +1.40 points of val_acc (with one seed no spread is measured, so this may be noise" in one_seed.text
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
