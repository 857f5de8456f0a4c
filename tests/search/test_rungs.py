"""Successive halving's choices, on known answers (the runs themselves: tests/search/test_run.py)."""

import pytest

from autosoft.search.confirm import Candidate, Confirmed
from autosoft.search.rungs import promoted, rank_correlations


def _trial(number, score, policy=None, fixed=None):
    return {"number": number, "score": score, "policy": policy or {"p": number}, "fixed_policy": fixed}


def test_promoted_takes_the_best_distinct_share_then_every_baseline():
    trials = [_trial(0, 0.5, fixed="baseline"), _trial(1, 0.9), _trial(2, 0.9, policy={"p": 1}),  # a repeat
              _trial(3, 0.7), _trial(4, 0.8), _trial(5, float("nan")), _trial(6, 0.6), _trial(7, None)]
    # 4 distinct searched policies with a finite score (1 = 2, 3, 4, 6): the best quarter is 1 of them
    assert [c.name for c in promoted(trials, reduction_factor=4, maximize=True, baselines=["baseline"])] == \
        ["trial-1", "baseline"]
    assert [c.name for c in promoted(trials, reduction_factor=3, maximize=True, baselines=[])] == ["trial-1", "trial-4"]
    # minimised objectives promote the lowest; the baseline keeps its trial's score as its proxy score
    picked = promoted(trials, reduction_factor=2, maximize=False, baselines=["baseline"])
    assert [c.name for c in picked] == ["trial-6", "trial-3", "baseline"] and picked[-1].proxy_score == 0.5
    assert [c.name for c in promoted(trials[:1], reduction_factor=4, maximize=True, baselines=[])] == []


def _confirmed(name, mean):
    return Confirmed(Candidate(name, {}, "searched", None), scores=[mean], seeds=[0])


def test_rank_correlations_per_cost_over_the_confirmed_policies():
    confirmed = [_confirmed("a", 0.9), _confirmed("b", 0.8), _confirmed("c", 0.7), _confirmed("d", 0.6)]
    rows = ([{"cost": 0.0625, "policy": n, "val_acc": s} for n, s in zip("abcde", (0.1, 0.3, 0.2, 0.4, 0.9))]
            + [{"cost": 0.25, "policy": n, "val_acc": s} for n, s in zip("abc", (0.5, 0.4, 0.3))])
    out = rank_correlations(rows, confirmed, "val_acc")
    # 1/16: a b c d ranked 4 2 3 1 against the confirmation's 1 2 3 4 (e was not confirmed)
    assert out[0] == {"cost": 0.0625, "policies": 4, "spearman": pytest.approx(-0.8)}
    assert out[1] == {"cost": 0.25, "policies": 3, "spearman": pytest.approx(1.0)}
    assert rank_correlations(rows[-2:], confirmed, "val_acc") == [{"cost": 0.25, "policies": 2, "spearman": None}]
