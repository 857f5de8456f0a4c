"""The race's decisions on known scores (no Ray, no training): who stops, who gets the next seed."""

import pytest

from autosoft.search.racing import Paired, clearly_worse, next_runs, paired, standings, t_critical

SEEDS = [0, 1, 2, 3]


def test_paired_difference_known_answer():
    d = paired({0: 0.70, 1: 0.74, 2: 0.72}, {0: 0.68, 1: 0.70, 5: 0.9})  # seeds 0 and 1 in common
    assert d.seeds == 2 and d.mean == pytest.approx(0.03) and d.se == pytest.approx(0.01)
    assert paired({0: 0.5}, {0: 0.4}).se is None and paired({0: 0.5}, {1: 0.4}) == Paired(None, None, 0)


def test_clearly_worse_is_a_one_sided_paired_t_test():
    assert t_critical(0.05, 2) == pytest.approx(6.3138, abs=1e-4)  # Student t, 1 degree of freedom
    # mean -0.03, se 0.01: t = -3, below -6.31 at 2 seeds? no; below -2.35 at 4 seeds: yes
    assert not clearly_worse(Paired(-0.03, 0.01, 2), maximize=True, alpha=0.05)
    assert clearly_worse(Paired(-0.03, 0.01, 4), maximize=True, alpha=0.05)
    assert not clearly_worse(Paired(-0.03, 0.01, 4), maximize=False, alpha=0.05)  # lower is better: it leads
    assert not clearly_worse(Paired(-0.5, None, 1), maximize=True, alpha=0.05)  # one seed never stops
    assert clearly_worse(Paired(-0.1, 0.0, 2), maximize=True, alpha=0.05)  # the same gap on every seed


def test_everyone_gets_the_first_seeds_seed_major():
    assert next_runs(["a", "b"], {"a": {0: 0.5}}, seeds=SEEDS, initial=2, maximize=True) == \
        [("b", 0), ("a", 1), ("b", 1)]


def test_clearly_worse_stop_and_the_rest_get_the_same_next_seed():
    scores = {"a": {0: 0.70, 1: 0.72}, "b": {0: 0.50, 1: 0.51}, "c": {0: 0.71, 1: 0.69}, "d": {0: 0.69, 1: 0.73}}
    race = standings(scores, maximize=True, alpha=0.05)
    assert race.incumbent == "a" and set(race.stopped) == {"b"} and race.contenders == ["c", "d"]
    assert next_runs(list(scores), scores, seeds=SEEDS, initial=2, maximize=True) == [("a", 2), ("c", 2), ("d", 2)]
    # a failed candidate is out of the race; at the cap nothing more runs
    assert next_runs(list(scores), scores, seeds=SEEDS, initial=2, maximize=True, failed=["c"]) == [("a", 2), ("d", 2)]
    assert next_runs(list(scores), scores, seeds=SEEDS[:2], initial=2, maximize=True) == []


def test_separated_race_ends_and_a_higher_cap_only_adds_seeds():
    scores = {"a": {0: 0.70, 1: 0.72}, "b": {0: 0.50, 1: 0.51}}
    assert next_runs(["a", "b"], scores, seeds=SEEDS, initial=2, maximize=True) == []  # b is clearly worse
    near = {"a": {0: 0.70, 1: 0.72, 2: 0.71}, "c": {0: 0.71, 1: 0.69, 2: 0.70}}
    assert next_runs(["a", "c"], near, seeds=SEEDS[:3], initial=2, maximize=True) == []      # cap 3 reached
    assert next_runs(["a", "c"], near, seeds=SEEDS, initial=2, maximize=True) == [("a", 3), ("c", 3)]


def test_a_revived_candidate_catches_up_on_its_missing_seed_first():
    # b was stopped against a; the new incumbent e shares only b's seeds 0-1, and b is within noise of it
    scores = {"e": {0: 0.60, 1: 0.64, 2: 0.66}, "b": {0: 0.61, 1: 0.62}}
    assert next_runs(["e", "b"], scores, seeds=SEEDS, initial=2, maximize=True) == [("b", 2)]
