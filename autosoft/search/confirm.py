"""The confirmation stage: the search's best policies and the known baselines, retrained and raced.

Proxy scores are noisy and biased (a short, small proxy favours weak augmentation, and the
best of many noisy scores is the luckiest one). So the top-K distinct searched policies
and every known baseline are retrained at confirmation fidelity (the target training, or a
stated fraction of it), all on one validation split, and raced (`autosoft.search.racing`):
each starts with S seeds, clearly worse ones stop, the best and those within noise of it
get more seeds, paired by seed, up to a cap. The winner is chosen on the mean; a searched
policy is exported only if it beats the best baseline on the seeds they share, else the
best baseline is what the search exports.

Each (policy, seed) is an `autosoft train` run directory under ``OUT/confirm/``: a finished
one is never run again, an interrupted one resumes from its checkpoint. Runs go to Ray like
the trials (one task each, same resources per run).
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from autosoft import plots
from autosoft.config import TrainConfig
from autosoft.errors import AutosoftError
from autosoft.policy import Policy, load_policy
from autosoft.rundir import RunDir
from autosoft.search import racing
from autosoft.search.record import candidate_name, write_csv
from autosoft.search.tune_glue import max_concurrent as max_concurrent_trials, trial_device, worker_config
from autosoft.train import train


@dataclass(frozen=True)
class Candidate:
    """A policy that goes to confirmation."""

    name: str                  # "trial-17", or the baseline's name
    policy: dict               # the policy as a dict (Policy.to_dict())
    kind: str                  # "searched" | "baseline"
    proxy_score: float | None  # its proxy score (None: a baseline that did not run as a trial)


@dataclass
class Confirmed:
    """One candidate's confirmation scores over seeds."""

    candidate: Candidate
    scores: list[float] = field(default_factory=list)   # one per finished seed
    ece: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)      # the seed of each score
    race: str = ""                                       # how the race left it, in words (see `race_report`)

    @property
    def by_seed(self) -> dict[int, float]:
        return dict(zip(self.seeds, self.scores))

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores) if self.scores else math.nan

    @property
    def mean_ece(self) -> float | None:
        """Validation ECE over seeds: the calibration the bar compares with the baseline's."""
        values = [e for e in self.ece if e is not None]
        return statistics.fmean(values) if values else None

    @property
    def std(self) -> float:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0

    def summary(self) -> dict:
        """What the search reports of this policy (SearchResult, provenance, confirm.csv)."""
        done = bool(self.scores)
        return {"policy": self.candidate.name, "kind": self.candidate.kind, "proxy_score": self.candidate.proxy_score,
                "seeds": len(self.scores), "scores": list(self.scores), "mean": self.mean if done else None,
                "std": self.std if done else None, "val_ece": self.mean_ece, "seed_list": list(self.seeds),
                "race": self.race}


@dataclass
class Verdict:
    winner: Confirmed
    best_baseline: Confirmed | None
    best_searched: Confirmed | None
    margin: float | None        # best searched minus best baseline, paired by seed, in score units
    margin_se: float | None     # the standard error of that paired difference (None: one shared seed)
    paired_seeds: int           # the seeds that difference is over
    separated: bool             # the paired test tells the two apart (one-sided, racing.ALPHA)
    searched_won: bool
    text: str
    proxy_rank_correlation: float | None   # Spearman, proxy score vs confirmation mean
    proxy_ranked: int = 0                   # the confirmed policies with a proxy score it ranks
    race: str = ""                          # how the race ended, in words (`race_report`)
    rung_correlations: list = field(default_factory=list)   # --rungs: Spearman per cost (`rungs.rank_correlations`)


def pick_candidates(trials: Sequence[dict], *, k: int, maximize: bool, baselines: Sequence[str]) -> list[Candidate]:
    """Top-k distinct searched policies by proxy score, then every baseline.

    `trials`: finished, complete trials as {"number", "score", "policy" (dict), "fixed_policy"
    (a baseline's name or None)}. Two trials with the same policy count once (the better).
    """
    searched = [t for t in trials if not t.get("fixed_policy") and t.get("score") is not None
                and math.isfinite(t["score"])]
    searched.sort(key=lambda t: t["score"], reverse=maximize)
    picked, seen = [], set()
    for t in searched:
        key = json.dumps(t["policy"], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        picked.append(Candidate(candidate_name(t["number"]), t["policy"], "searched", t["score"]))
        if len(picked) == k:
            break
    ran = {t["fixed_policy"]: t.get("score") for t in trials if t.get("fixed_policy")}
    for name in baselines:
        picked.append(Candidate(name, load_policy(name).to_dict(), "baseline", ran.get(name)))
    return picked


def summarize(candidates: Sequence[Candidate], finals: dict[tuple[str, int], dict], metric: str) -> list[Confirmed]:
    """Confirmation scores per candidate from the finished runs' final.json, keyed (name, seed)."""
    out = []
    for c in candidates:
        conf = Confirmed(c)
        for (name, seed), final in sorted(finals.items()):
            if name == c.name and final.get(metric) is not None:
                conf.scores.append(final[metric])
                conf.ece.append(final.get("val_ece"))
                conf.seeds.append(seed)
        out.append(conf)
    return out


def judge(confirmed: Sequence[Confirmed], *, maximize: bool, metric: str) -> Verdict:
    """The winner on the mean, and the verdict in words (scores in points when they are accuracies).

    The best searched policy and the best baseline are compared on the seeds both finished
    (paired: the same seeds, the same validation split); the searched one is exported only
    if that paired difference is above 0, a tie goes to the baseline."""

    done = [c for c in confirmed if c.scores]
    if not done:
        raise AutosoftError("confirmation: no run finished, so there is nothing to compare")
    sign = 1 if maximize else -1
    best = lambda group: max(group, key=lambda c: sign * c.mean) if group else None  # noqa: E731
    baselines = [c for c in done if c.candidate.kind == "baseline"]
    searched = [c for c in done if c.candidate.kind == "searched"]
    best_base, best_search = best(baselines), best(searched)
    margin = se = None
    shared, separated = 0, False
    if best_base is not None and best_search is not None:
        diff = racing.paired(best_search.by_seed, best_base.by_seed)
        shared = diff.seeds
        if diff.mean is None:  # no seed in common (runs that failed): the means, unpaired
            margin = sign * (best_search.mean - best_base.mean)
        else:
            margin, se = sign * diff.mean, diff.se
            loser = racing.Paired(-abs(diff.mean), diff.se, diff.seeds)
            separated = racing.clearly_worse(loser, maximize=True, alpha=racing.ALPHA)
    beats = best_search is not None and (best_base is None or margin > 0)
    winner = best_search if beats else best_base
    scale, unit = (100.0, " points") if metric.endswith("acc") else (1.0, "")

    def fmt(c: Confirmed) -> str:
        if len(c.scores) == 1:  # one seed has no spread to show
            return f"{c.candidate.name} {scale * c.mean:.2f} (1 seed)"
        return f"{c.candidate.name} {scale * c.mean:.2f} ± {scale * c.std:.2f} ({len(c.scores)} seeds)"

    def diff_text() -> str:
        if se is None:
            return (f"{scale * margin:+.2f}{unit} of {metric} (with {'one seed' if shared == 1 else 'no seed'} "
                    "in common no spread is measured, so this may be noise; confirm with --confirm-seeds 2 or more)")
        verdict = "separated" if separated else "not separated"
        return (f"{scale * margin:+.2f} ± {scale * se:.2f}{unit} of {metric}, paired over {shared} seeds "
                f"({verdict} by a one-sided paired t-test at {racing.ALPHA:g})")

    searched_won = winner.candidate.kind == "searched"
    if best_base is None:
        text = f"confirmation winner: {fmt(winner)}; no baseline was confirmed to compare with"
    elif searched_won:
        text = f"the searched policy beats the best baseline by {diff_text()}: {fmt(winner)} vs {fmt(best_base)}"
    elif best_search is None:
        text = f"no searched policy was confirmed; exporting the best baseline: {fmt(best_base)}"
    else:
        text = (f"no searched policy beat the best baseline: {fmt(best_base)} vs best searched "
                f"{fmt(best_search)} ({diff_text()}); exporting {best_base.candidate.name}")
    with_proxy = [c for c in done if c.candidate.proxy_score is not None]
    rho = rank_correlation([c.candidate.proxy_score for c in with_proxy], [c.mean for c in with_proxy])
    return Verdict(winner, best_base, best_search, margin, se, shared, separated, searched_won, text, rho,
                   len(with_proxy))


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman of two score lists; None under 3 pairs or when a list is constant."""
    from scipy.stats import spearmanr

    if len(xs) < 3:
        return None
    rho = float(spearmanr(xs, ys).statistic)
    return None if math.isnan(rho) else rho


def race_report(confirmed: Sequence[Confirmed], *, maximize: bool, cap: int, time_limited: bool,
                failed: Sequence[str] = ()) -> str:
    """Sets each candidate's `race` (how the race left it) and returns how the race ended, in words."""
    scores = {c.candidate.name: c.by_seed for c in confirmed if c.candidate.name not in failed}
    race = racing.standings(scores, maximize=maximize, alpha=racing.ALPHA)
    for c in confirmed:
        name = c.candidate.name
        if name in failed:
            c.race = "a run failed: out of the race"
        elif name == race.incumbent:
            c.race = "best mean"
        elif name in race.stopped:
            d = race.stopped[name]
            c.race = (f"stopped after {len(c.scores)} seeds: worse than {race.incumbent} by "
                      f"{abs(d.mean):.4f} ± {d.se:.4f} paired over {d.seeds}")
        elif c.scores:
            c.race = f"within noise of {race.incumbent} after {len(c.scores)} seeds"
    if not race.contenders:
        return "separated: every other candidate is clearly worse than the best"
    if time_limited:
        return f"time limit reached with {len(race.contenders)} within noise of the best"
    return f"seed cap ({cap}) reached with {len(race.contenders)} within noise of the best"


def write_outputs(confirmed: Sequence[Confirmed], verdict: Verdict, out: Path, metric: str, maximize: bool) -> None:
    """confirm.csv (one row per policy) and confirm.png (every seed's score, mean and spread)."""
    rows = []
    for c in confirmed:
        row = c.summary()
        rows.append({"policy": row["policy"], "kind": row["kind"], "proxy_score": row["proxy_score"],
                     "seeds": row["seeds"], f"{metric}_mean": row["mean"], f"{metric}_std": row["std"],
                     "val_ece_mean": row["val_ece"], "winner": c is verdict.winner, "race": row["race"],
                     "scores": " ".join(f"{s:.4f}" for s in row["scores"])})
    write_csv(rows, out / "confirm.csv")
    try:
        plots.confirmation([(c.candidate.name, c.candidate.kind == "baseline", c.scores) for c in confirmed if c.scores],
                           out / "confirm.png", metric=metric, maximize=maximize, winner=verdict.winner.candidate.name)
    except Exception as e:  # a plot must never cost the search its results (written above)
        warnings.warn(f"could not draw {out / 'confirm.png'}: {type(e).__name__}: {e}")


def _confirm_run(config: dict, policy: dict, run_dir: str) -> dict:
    """One confirmation run (in a Ray worker): an ordinary, resumable `autosoft train` run."""
    return train(TrainConfig.from_dict(worker_config(config)), Policy.from_dict(policy, source=run_dir),
                 run_dir=run_dir, quiet=True)


def run_dir_name(name: str, seed: int) -> str:
    return f"{name}-s{seed}"


def finished_runs(folder: Path, candidates: Sequence[Candidate], seeds: Sequence[int]) -> dict[tuple[str, int], dict]:
    out = {}
    for c in candidates:
        for s in seeds:
            path = folder / run_dir_name(c.name, s) / "final.json"
            if path.exists():
                out[(c.name, s)] = json.loads(path.read_text())
    return out


def reuse_runs(folder: Path, candidates: Sequence[Candidate], config: dict, seeds: Sequence[int],
               sources: Sequence[Path], *, gpus: float) -> list[str]:
    """Copy into `folder` each finished run of another search's confirmation stage (its folder's
    ``confirm/``) that trained the same policy at the same seed and config as a run still to do
    here: it would train to the same numbers, so the baselines, confirmed by every search aimed
    at one target, are trained once. The copy (checkpoint left out) gets a ``reused_from.json``
    naming its source, which is never changed. Returns the copied run folders' names."""
    if not sources:
        return []
    # As the worker will run it (see `_confirm_run`), which is what the source recorded.
    device = trial_device(config.get("device", "auto"), [0] if gpus > 0 else [], torch.cuda.is_available())
    policies = {c.name: Policy.from_dict(c.policy, source=c.name) for c in candidates}
    copied = []
    for s in seeds:
        expected = TrainConfig.from_dict({**config, "seed": s, "device": device})
        for c in candidates:
            name = run_dir_name(c.name, s)
            target = folder / name
            if target.exists():
                continue  # finished, or under way here: this search's own
            policy = policies[c.name]
            for source in sources:
                run = RunDir(Path(source) / "confirm" / name)
                if run.final.exists() and run.records(expected, policy):
                    folder.mkdir(parents=True, exist_ok=True)
                    tmp = folder / f".{name}.reuse.tmp"
                    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted copy
                    shutil.copytree(run.path, tmp, ignore=shutil.ignore_patterns(run.checkpoint.name))
                    (tmp / "reused_from.json").write_text(json.dumps({"source": str(run.path.resolve())}) + "\n")
                    tmp.rename(target)  # whole or not at all
                    copied.append(name)
                    break
    return copied


def run_confirmation(candidates: Sequence[Candidate], config: dict, seeds: Sequence[int], folder: Path, *,
                     initial: int, metric: str, maximize: bool, cpus: float, gpus: float,
                     max_concurrent: int | None = None, time_limit_s: float | None = None, before_first_run=None, on_done=None) -> tuple[dict, dict, bool]:
    """Race the candidates (`autosoft.search.racing`): train the runs the race asks for, round
    by round, `max_concurrent` at a time on Ray (None: as many as the cluster fits, read once Ray is
    up), until it ends. `seeds`: every seed a candidate
    may get (the cap is their number), the first `initial` of them for all. Finished runs are
    read back, not trained. After `time_limit_s` no new round starts beyond the first seeds.

    Returns (finals keyed (name, seed), errors keyed (name, seed) -> one line, whether the time
    limit ended the race). `before_first_run` is called once, before the first run is sent
    (to start Ray): a race with nothing left to train never calls it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    finals = finished_runs(folder, candidates, seeds)
    errors: dict = {}
    started = time.monotonic()
    by_name = {c.name: c for c in candidates}
    task = None
    while True:
        scores: dict[str, dict[int, float]] = {}
        for (name, seed), final in finals.items():
            if final.get(metric) is not None:
                scores.setdefault(name, {})[seed] = final[metric]
        todo = racing.next_runs([c.name for c in candidates], scores, seeds=seeds, initial=initial,
                                maximize=maximize, failed={name for name, _ in errors})
        if not todo:
            return finals, errors, False
        first_seeds = all(s in seeds[:initial] for _, s in todo)
        if time_limit_s is not None and not first_seeds and time.monotonic() - started > time_limit_s:
            return finals, errors, True
        if task is None:
            import ray
            if before_first_run is not None:
                before_first_run()
            if max_concurrent is None:  # only now: a resumed race starts Ray in before_first_run
                max_concurrent = max_concurrent_trials(cpus, gpus)
            task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_confirm_run)
        pending: dict = {}
        while todo or pending:
            while todo and len(pending) < max_concurrent:
                name, s = todo.pop(0)
                ref = task.remote({**config, "seed": s}, by_name[name].policy, str(folder / run_dir_name(name, s)))
                pending[ref] = (name, s)
            ready, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(ready[0])
            try:
                finals[key] = ray.get(ready[0])
            except Exception as e:  # a failed run is reported, the others go on
                errors[key] = " ".join(str(getattr(e, "cause", e)).split())[:300]
            if on_done is not None:
                on_done(key, finals.get(key), errors.get(key))
