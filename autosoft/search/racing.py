"""Racing: which confirmation runs to train next, decided from the runs finished so far.

Two policies 0.3 points apart cannot be told apart by two seeds each, least of all when
each seed also draws its own validation split. So the confirmation stage races, as F-race
and SMAC's intensifier do: every run of one search validates on the same split (the search
fixes `split_seed`), every candidate starts with the same `initial` seeds, and then

- the incumbent is the candidate with the best mean score;
- a candidate is *stopped* once a one-sided paired t-test on the seeds it shares with the
  incumbent says it is worse (level `alpha`): it trains no more seeds;
- the incumbent and every candidate still within noise of it get the next seed, all the
  same one (so every comparison stays paired by seed), until none is left within noise
  (the race is *separated*) or they reach the seed cap (or the stage's time limit).

Every decision is a function of the finished runs only: a rerun replays the same race,
and a rerun with a higher cap goes on from where the last one stopped, training only new
seeds. Seeds are `base + i` for i < max_seeds.

>>> scores = {"a": {0: 0.70, 1: 0.71}, "b": {0: 0.60, 1: 0.62}, "c": {0: 0.705, 1: 0.69}}
>>> race = standings(scores, maximize=True, alpha=0.05)
>>> race.incumbent, sorted(race.stopped), sorted(race.contenders)
('a', ['b'], ['c'])
>>> next_runs(["a", "b", "c"], scores, seeds=[0, 1, 2, 3], initial=2, maximize=True, alpha=0.05)
[('a', 2), ('c', 2)]
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Mapping, Sequence

ALPHA = 0.05   # one-sided level of the paired test that stops a candidate


@dataclass(frozen=True)
class Paired:
    """`a` minus `b` over the seeds both finished (in score units)."""

    mean: float | None
    se: float | None      # standard error of the mean difference (None: fewer than 2 seeds)
    seeds: int


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> Paired:
    """The paired difference a - b over their common seeds."""
    diffs = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    if not diffs:
        return Paired(None, None, 0)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
    return Paired(statistics.fmean(diffs), se, len(diffs))


def t_critical(alpha: float, seeds: int) -> float:
    """The one-sided Student-t critical value at `alpha` for a paired test over `seeds` seeds."""
    from scipy.stats import t
    return float(t.ppf(1 - alpha, seeds - 1))


def clearly_worse(diff: Paired, *, maximize: bool, alpha: float) -> bool:
    """Whether `diff` (candidate minus incumbent) says the candidate is worse at level `alpha`."""
    if diff.se is None or diff.mean is None:
        return False  # one seed measures no spread: never stop on it
    sign = 1 if maximize else -1
    if diff.se == 0:
        return sign * diff.mean < 0
    return sign * diff.mean + t_critical(alpha, diff.seeds) * diff.se < 0


@dataclass
class Standings:
    incumbent: str | None
    contenders: list[str] = field(default_factory=list)    # within noise of the incumbent
    stopped: dict[str, Paired] = field(default_factory=dict)  # name -> its difference to the incumbent


def standings(scores: Mapping[str, Mapping[int, float]], *, maximize: bool, alpha: float) -> Standings:
    """The incumbent (best mean), the candidates stopped against it and those still in the race."""
    ran = {name: s for name, s in scores.items() if s}
    if not ran:
        return Standings(None)
    sign = 1 if maximize else -1
    incumbent = max(ran, key=lambda n: (sign * statistics.fmean(ran[n].values()), len(ran[n])))
    out = Standings(incumbent)
    for name, s in ran.items():
        if name == incumbent:
            continue
        diff = paired(s, ran[incumbent])
        if clearly_worse(diff, maximize=maximize, alpha=alpha):
            out.stopped[name] = diff
        else:
            out.contenders.append(name)
    return out


def next_runs(names: Sequence[str], scores: Mapping[str, Mapping[int, float]], *, seeds: Sequence[int],
              initial: int, maximize: bool, alpha: float = ALPHA, failed: Sequence[str] = ()) -> list[tuple[str, int]]:
    """The (name, seed) runs to train next; [] when the race is over.

    `scores`: name -> {seed: score} of the finished runs; `seeds`: every seed a candidate may
    get, in order (the cap is its length); `failed`: candidates with a failed run, out of the race.
    """
    failed = set(failed)
    alive = [n for n in names if n not in failed]
    first = [(n, s) for s in seeds[:initial] for n in alive if s not in scores.get(n, {})]
    if first:
        return first  # seed-major: every candidate gets its first seeds before any gets more
    race = standings({n: scores.get(n, {}) for n in alive}, maximize=maximize, alpha=alpha)
    if race.incumbent is None or not race.contenders:
        return []  # separated (or nothing ran)
    runs = []
    for name in [race.incumbent] + race.contenders:
        missing = [s for s in seeds if s not in scores.get(name, {})]
        if missing:
            runs.append((name, missing[0]))
    # The same seed for all where they can (the lowest any lacks), so the new runs stay paired.
    if runs:
        low = min(s for _, s in runs)
        runs = [(n, low) for n, _ in runs if low not in scores.get(n, {})]
    return runs
