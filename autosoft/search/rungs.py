"""Successive halving over train images (`--rungs 1/16,1/4`): the trials train on a small share
of the target's cost, the best 1/η of them (and every baseline) are retrained at the next
share, and so on; the confirmation stage takes its candidates by the last rung's score.

Images, not epochs: cutting a trial's epochs ranked policies against the target's order,
cutting its images did not (`experiments/proxy_fidelity.py`, `experiments/fidelity_rungs.py`).
So every rung keeps the target's epochs and trains on more images than the one before
(`autosoft.search.proxy.rung_config`), validated on the trials' own split. A rung is
synchronous: it starts once the trials (or the rung before) have all finished, so who is
promoted depends on the finished trials only and a rerun promotes the same policies.

Each rung run is an `autosoft train` run folder, ``OUT/rungs/COST/NAME-sSEED`` (one seed, the
search's), trained on Ray like a confirmation run: a finished one is read back, never trained
again, an interrupted one resumes from its checkpoint.

>>> trials = [{"number": n, "score": s, "policy": {"p": n}, "fixed_policy": None}
...           for n, s in enumerate([0.5, 0.9, 0.7, 0.8, 0.6, 0.65, 0.55, 0.75])]
>>> [c.name for c in promoted(trials, reduction_factor=4, maximize=True, baselines=[])]
['trial-1', 'trial-3']
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from autosoft.errors import AutosoftError
from autosoft.search import confirm as confirm_stage
from autosoft.search.record import candidate_name, write_csv


def promoted(entries: Sequence[dict], *, reduction_factor: int, maximize: bool,
             baselines: Sequence[str]) -> list[confirm_stage.Candidate]:
    """The best 1/`reduction_factor` of a rung's distinct searched policies (at least one), then
    every baseline: the next rung's runs. `entries` as `confirm.pick_candidates` reads them."""
    # pick_candidates' own rule of which searched policies count (distinct, finite score)
    distinct = len(confirm_stage.pick_candidates(entries, k=len(entries), maximize=maximize, baselines=()))
    keep = max(1, math.ceil(distinct / reduction_factor))
    return confirm_stage.pick_candidates(entries, k=keep, maximize=maximize, baselines=baselines)


def cost_folder(cost: float) -> str:
    return f"cost-{cost:g}"


def run_rungs(trials: list[dict], rungs: Sequence[tuple[float, dict]], *, trial_cost: float, seed: int,
              folder: Path, metric: str, maximize: bool, reduction_factor: int, baselines: Sequence[str],
              cpus: float, gpus: float, max_concurrent: int | None, before_first_run=None,
              on_done=None) -> tuple[list[dict], list[dict]]:
    """Every rung in turn: promote from the one before (the trials first), train the runs not
    finished yet. `trials` as `confirm.pick_candidates` reads them; `rungs`: (cost, train
    config) per rung after the trials' (at `trial_cost`).

    Returns the last rung's entries (the trials' dicts with that rung's score; a policy whose run
    failed is left out) and one row per (cost, policy) of every policy a rung trained, its
    trial's score first: rungs.csv, written to `folder`'s parent."""
    by_name = {candidate_name(e["number"], e.get("fixed_policy")): e for e in trials}
    scores: dict[str, dict] = {}   # policy -> {cost: score}, in the order rungs first trained them
    kinds: dict[str, str] = {}
    entries = list(trials)
    for cost, config in rungs:
        candidates = promoted(entries, reduction_factor=reduction_factor, maximize=maximize, baselines=baselines)
        finals, errors, _ = confirm_stage.run_confirmation(
            candidates, config, [seed], folder / cost_folder(cost), initial=1, metric=metric, maximize=maximize,
            cpus=cpus, gpus=gpus, max_concurrent=max_concurrent, before_first_run=before_first_run,
            on_done=None if on_done is None else lambda key, final, error, cost=cost: on_done(cost, key, final, error))
        entries = []
        for c in candidates:
            kinds[c.name] = c.kind
            row = scores.setdefault(c.name, {trial_cost: by_name[c.name]["score"] if c.name in by_name else None})
            final = finals.get((c.name, seed))
            score = final.get(metric) if final else None
            if score is None or not math.isfinite(score):
                continue
            row[cost] = score
            base = by_name.get(c.name) or {"number": None, "policy": c.policy, "fixed_policy": c.name}
            entries.append({**base, "score": score})
        if not any(not e.get("fixed_policy") for e in entries):
            first = next(iter(errors.items()), None)
            raise AutosoftError(f"rung at {cost:g} of the target's cost: no searched policy's run finished"
                                + (f"; the first failure ({first[0][0]}): {first[1]}" if first else ""))
    rows = [{"cost": cost, "policy": name, "kind": kinds[name], metric: score}
            for name, by_cost in scores.items() for cost, score in by_cost.items() if score is not None]
    write_csv(rows, folder.parent / "rungs.csv")
    return entries, rows


def rank_correlations(rows: Sequence[dict], confirmed: Sequence[confirm_stage.Confirmed], metric: str) -> list[dict]:
    """Per cost (the trials' first): Spearman of its scores against the confirmation's means, over
    the confirmed policies it scored: how well each fidelity ranks what the target ranks."""
    means = {c.candidate.name: c.mean for c in confirmed if c.scores}
    out = []
    for cost in dict.fromkeys(r["cost"] for r in rows):
        scores = {r["policy"]: r[metric] for r in rows if r["cost"] == cost and r["policy"] in means}
        rho = confirm_stage.rank_correlation(list(scores.values()), [means[n] for n in scores])
        out.append({"cost": cost, "policies": len(scores), "spearman": rho})
    return out
