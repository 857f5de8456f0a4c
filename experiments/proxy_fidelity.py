"""Proxy fidelity: does a cheap proxy rank policies the way the target regime does?

A fixed panel of policies (the built-ins, the three policies of the old main table and 8
random draws from the joint space) is trained under the target regime and under each
candidate proxy, 2 seeds each. Per proxy it reports the Spearman rank correlation between
the proxy's score (accuracy on a validation split held out of train) and the target's score
(by default accuracy on a dev split held out of train, the same images for every regime;
`--score test`: top-1 on the exact test split, as the stored studies were made), and the cost
per run relative to the target, both as measured training seconds and as nominal compute
(images seen x the model's cost per image). A design study scores on the dev split: the test
split is for the final tables only (issue #24); the dev study's runs go to RESULTS_dev/.

    python experiments/proxy_fidelity.py                 # run what is missing (dev split), then the table
    python experiments/proxy_fidelity.py --score test --table-only   # rebuild the stored (test) study's fidelity.md
    python experiments/proxy_fidelity.py --dataset cifar100   # the same on the CIFAR-100 regime
    python experiments/proxy_fidelity.py --table-only --doc experiments/RESULTS.md   # and its summary there

Every run is an `autosoft train` run directory; a finished one is skipped and an unfinished
one resumes, so the study completes across sessions. The target runs are the main table's
runs (same config, same folder naming as experiments/table.py), so they are shared with it.
Order is seed-major, then policy by policy under every regime: a partial study already
compares all regimes on the policies done so far.
"""

from __future__ import annotations

import argparse
import dataclasses
import csv
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from autosoft.errors import AutosoftError  # noqa: E402
from autosoft.policy import BUILTIN_POLICIES, load_policy  # noqa: E402
from autosoft.train import TrainConfig, train  # noqa: E402
from experiments.table import exit_status, write_between_markers  # noqa: E402

JOINT_SPACE = "autoaugment+soft"
N_RANDOM = 8
RANDOM_SEED = 100  # the random draws of the panel (the table's `random` policy is seed 0)
DRAWS = ROOT / "experiments/results/proxy_fidelity/random-draws"  # the same 8 draws in every study

# Candidate proxies: overrides of the target config. A proxy validates on 5,000 held-out
# train images (std error ~0.65 points at 70%), so its noise is well below the gaps it ranks.
PROXIES_CIFAR10: dict[str, dict] = {
    # the search's CPU preset before this study: width 16, 15 epochs, 1,000 validation images
    "preset-cpu": {"model_kwargs": {"width": 16}, "epochs": 15, "warmup_epochs": 1, "val_size": 1000},
    # the target's model and data, a complete schedule compressed 4x
    "w32-e10": {"epochs": 10, "warmup_epochs": 1, "val_size": 5000},
    # the target's model, half the data, half the epochs
    "w32-e20-n2500": {"epochs": 20, "warmup_epochs": 1, "train_size": 2500, "val_size": 5000},
    # a narrower model for the target's data, half the epochs
    "w16-e20": {"model_kwargs": {"width": 16}, "epochs": 20, "warmup_epochs": 1, "val_size": 5000},
    # w32-e10 with the target's number of optimizer steps: batch / 4, lr scaled alike
    # (added after seed 0 of the first 4 policies: the short w32 proxies looked step-starved)
    "w32-e10-b64": {"epochs": 10, "warmup_epochs": 1, "val_size": 5000, "batch_size": 64, "lr": 0.05},
    # The target's 40 epochs (each image seen as often as in the target) on a quarter of its
    # images, at the target's number of steps (batch / 4). Added after the search with
    # w32-e10-b64 ranked autoaugment-cifar10 and randaugment below the baseline on the proxy
    # while both beat it at the target: does augmentation pay on a short proxy only when its
    # images are seen as many times as in the target?
    # Validated after the last epoch only, as in the search (40 passes over 5,000 validation
    # images would cost more than the training; from the third policy of seed 0 on).
    "w32-e40-n1250-b64": {"epochs": 40, "warmup_epochs": 2, "train_size": 1250, "val_size": 5000,
                          "batch_size": 64, "lr": 0.05, "val_every": 0},
    # The same 40 epochs with a narrower net (about half the cost per image) on half the images.
    "w16-e40-n2500-b64": {"model_kwargs": {"width": 16}, "epochs": 40, "warmup_epochs": 2, "train_size": 2500,
                          "val_size": 5000, "batch_size": 64, "lr": 0.05, "val_every": 0},
}
# CIFAR-100 (target: experiments/configs/cifar100_cpu_w32_n10k_e40.json, 10,000 images, 100 a
# class). Added after the headline search's first 32 trials ranked TrivialAugment below the
# baseline on its proxy (23.3 vs 24.1% validation accuracy) where the target ranks it 2.2 points
# above: the search's rule keeps a quarter of the images, which leaves 25 a class here (125 on
# CIFAR-10, where the rule was chosen). Validated once, after the last epoch, as in the search;
# one thread each, beside the target runs.
PROXIES_CIFAR100: dict[str, dict] = {
    # the search's rule (autosoft/search/proxy.py) for this target: 2,500 images, 40 epochs, batch 64
    "rule-w32-n2500-b64": {"train_size": 2500, "val_size": 5000, "batch_size": 64, "lr": 0.05,
                           "val_every": 0, "threads": 1},
    # the same nominal cost spent on twice the images (50 a class) with half the width
    "w16-n5000-b128": {"model_kwargs": {"width": 16}, "train_size": 5000, "val_size": 5000, "batch_size": 128,
                       "lr": 0.1, "val_every": 0, "threads": 1},
    # half the target's images at its width: twice the rule's cost, a reference for more images a class
    "w32-n5000-b128": {"train_size": 5000, "val_size": 5000, "batch_size": 128, "lr": 0.1,
                       "val_every": 0, "threads": 1},
}


@dataclass(frozen=True)
class Study:
    """One data set's fidelity study: its target, where runs go, its candidate proxies."""
    dataset: str
    target_config: Path
    target_results: Path   # the table's runs of the same config: shared with experiments/table.py
    results: Path
    proxies: dict
    builtins: tuple        # the built-in policies in the panel
    old_table: Path | None = None   # CIFAR-10: the old pipeline's policies join the panel
    # candidates no longer trained (their finished runs stay in the report)
    dropped: frozenset = field(default_factory=frozenset)
    marker: str = "fidelity"        # the markers --doc writes between (experiments/RESULTS.md)
    score: str = "test"             # "test": the target scores test top-1; "dev": every regime the dev split


STUDIES = {
    "cifar10": Study("cifar10", ROOT / "experiments/configs/cifar10_cpu_w32.json",
                     ROOT / "experiments/results/cifar10_w32_exact", ROOT / "experiments/results/proxy_fidelity",
                     PROXIES_CIFAR10, tuple(BUILTIN_POLICIES), old_table=ROOT / "experiments/results/search_cifar10",
                     # w32-e20-n2500 ranked the first 4 policies at -0.8 with validation accuracies
                     # of 22-39%, starved of steps (180)
                     dropped=frozenset({"w32-e20-n2500"})),
    # no `none` (the CIFAR-100 table has no such row; it inflates any Spearman)
    "cifar100": Study("cifar100", ROOT / "experiments/configs/cifar100_cpu_w32_n10k_e40.json",
                      ROOT / "experiments/results/cifar100_w32", ROOT / "experiments/results/proxy_fidelity_cifar100",
                      PROXIES_CIFAR100, tuple(n for n in BUILTIN_POLICIES if n != "none"),
                      marker="fidelity-cifar100"),
}
# Training cost per 32x32 image relative to width 32: the proxy net's measured training
# throughput on this project's 2-core machines (width 16: 3,907 img/s, width 32: 1,834 img/s).
WIDTH_COST = {16: 1834 / 3907, 32: 1.0}


def panel(st: Study) -> dict[str, str]:
    """{name: policy source}: built-ins, the old table's three policies, random draws (saved once)."""
    from autosoft.search import sample_policies
    out = {name: name for name in st.builtins}
    if st.old_table:
        # "old-": from the search pipeline before this study (proxy preset, no confirmation); the
        # prefix keeps their runs apart from the new pipeline's `searched` rows in the shared folder.
        out.update({"old-searched": str(st.old_table / "search-joint/policy.json"),
                    "old-searched-hard": str(st.old_table / "search-hard/policy.json"),
                    "old-random": str(st.old_table / "random-policy.json")})
    draws = DRAWS
    if not all((draws / f"draw{i}.json").exists() for i in range(N_RANDOM)):
        draws.mkdir(parents=True, exist_ok=True)
        for i, policy in enumerate(sample_policies(JOINT_SPACE, N_RANDOM, seed=RANDOM_SEED)):
            data = policy.to_dict()
            data["name"] = f"draw{i}"
            data["provenance"] = {"drawn_from": JOINT_SPACE, "seed": RANDOM_SEED, "index": i,
                                  "sampler": "optuna RandomSampler"}
            type(policy).from_dict(data).save(draws / f"draw{i}.json")
    out.update({f"draw{i}": str(draws / f"draw{i}.json") for i in range(N_RANDOM)})
    return out


def regimes(st: Study, target: TrainConfig) -> dict[str, tuple[TrainConfig, Path]]:
    base = target.to_dict()
    out = {"target": (target, st.target_results)}
    for name, overrides in st.proxies.items():
        cfg = TrainConfig.from_dict({**base, **overrides, "eval_test": False})
        out[name] = (cfg, st.results / name)
    return out


def run_all(policies: dict[str, str], regs: dict, seeds: list[int], only: set[str] | None,
            dropped: frozenset = frozenset()) -> None:
    for seed in seeds:
        for name, source in policies.items():
            for regime, (config, folder) in regs.items():
                if (only and regime not in only) or regime in dropped:
                    continue
                run_dir = folder / f"{name}-s{seed}"
                if (run_dir / "final.json").exists():
                    continue
                t0 = time.time()
                cfg = TrainConfig.from_dict({**config.to_dict(), "seed": seed})
                final = train(cfg, load_policy(source), run_dir=run_dir, quiet=True)
                score = final.get("top1", final.get("val_acc"))
                print(f"{regime} {name} seed {seed}: {score:.4f} ({time.time() - t0:.0f}s)", flush=True)


def score_of(final: dict, regime: str) -> float:
    """The target's test top-1 where it was evaluated on test (`--score test`), else validation accuracy."""
    return final["top1"] if regime == "target" and "top1" in final else final["val_acc"]


# The dev split of the design studies: held out of train, the same images for every regime and
# seed, neither the test split nor the split a search's confirmation uses (CONFIRM_SPLIT_SEED).
DEV_SPLIT_SEED = 2_000_003
DEV_SIZE = 5000


def on_dev_split(st: Study) -> Study:
    """The study scored on the dev split: every regime validates on it and trains on the rest;
    its runs (the target's too: another config than the table's) go to RESULTS_dev/."""
    dev = {"split_seed": DEV_SPLIT_SEED, "val_size": DEV_SIZE}
    results = st.results.with_name(st.results.name + "_dev")
    return dataclasses.replace(st, target_results=results / "target", results=results, score="dev",
                               proxies={name: {**o, **dev} for name, o in st.proxies.items()},
                               marker=st.marker + "-dev")


def nominal_cost(config: TrainConfig) -> float:
    """Images seen in training x relative per-image cost (validation passes not counted)."""
    width = config.model_kwargs.get("width", 16)
    return config.epochs * (config.train_size or 0) * WIDTH_COST[width]


def collect(policies, regs, seeds) -> dict[str, dict[str, list[dict]]]:
    out = {}
    for regime, (_, folder) in regs.items():
        out[regime] = {}
        for name in policies:
            finals = []
            for s in seeds:
                run = folder / f"{name}-s{s}"
                if (run / "final.json").exists():
                    curve = [json.loads(line).get("val_acc") for line in (run / "metrics.jsonl").read_text().splitlines()]
                    finals.append({**json.loads((run / "final.json").read_text()), "seed": s, "curve": curve})
            out[regime][name] = finals
    return out


def _part_way(curve: list, fraction: float):
    """The validation score `fraction` of the way through a run (None: not validated then, or no curve)."""
    return curve[max(0, math.ceil(fraction * len(curve)) - 1)] if curve else None


def write_report(st: Study, results: dict, regs: dict, seeds: list[int]) -> str:
    from scipy.stats import spearmanr

    target_scores = {n: statistics.fmean(score_of(f, "target") for f in fs)
                     for n, fs in results["target"].items() if fs}
    target_secs = [f["train_time_s"] for fs in results["target"].values() for f in fs]
    target_nominal = nominal_cost(regs["target"][0])
    lines = ["| regime | policies with target | runs | Spearman vs target | cost (measured s) | cost (nominal) |",
             "|---|---|---|---|---|---|"]
    rows_csv = []
    for regime, per_policy in results.items():
        means = {n: statistics.fmean(score_of(f, regime) for f in fs) for n, fs in per_policy.items() if fs}
        common = [n for n in means if n in target_scores]
        rho = spearmanr([means[n] for n in common], [target_scores[n] for n in common]).statistic \
            if len(common) >= 3 else float("nan")
        secs = [f["train_time_s"] for fs in per_policy.values() for f in fs]
        measured = statistics.fmean(secs) / statistics.fmean(target_secs) if secs and target_secs else float("nan")
        nominal = nominal_cost(regs[regime][0]) / target_nominal
        runs = sum(len(fs) for fs in per_policy.values())
        lines.append(f"| {regime} | {len(common)} | {runs} | {rho:.2f} | {measured:.2f} | {nominal:.2f} |")
        for n, fs in per_policy.items():
            for f in fs:
                rows_csv.append({"regime": regime, "policy": n, "seed": f["seed"], "score": score_of(f, regime),
                                 "train_time_s": f["train_time_s"]})
    target_score = "test top-1" if st.score == "test" else "dev-split accuracy"
    scores = ["", f"Per-policy mean score (%, target: {target_score}; proxies: validation accuracy):", "",
              "| policy | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for n in results["target"]:
        cells = []
        for regime in results:
            fs = results[regime][n]
            cells.append(f"{100 * statistics.fmean(score_of(f, regime) for f in fs):.2f} ({len(fs)})" if fs else "-")
        scores.append(f"| {n} | " + " | ".join(cells) + " |")
    # What early stopping sees: the proxy's validation accuracy part-way through its schedule.
    fractions = (1 / 3, 1 / 2, 2 / 3, 1.0)
    early = ["", "Spearman vs target of the proxy's validation accuracy part-way through its schedule "
             "(what an early-stopping rung at that epoch ranks by):", "",
             "| regime | " + " | ".join(f"{f:.0%} of epochs" for f in fractions) + " |",
             "|---|" + "---|" * len(fractions)]
    for regime, per_policy in results.items():
        if regime == "target":
            continue
        cells = []
        for f in fractions:
            means = {}
            for n, fs in per_policy.items():
                vals = [v for v in (_part_way(x["curve"], f) for x in fs) if v is not None]
                if vals and n in target_scores:
                    means[n] = statistics.fmean(vals)
            rho = spearmanr(list(means.values()), [target_scores[n] for n in means]).statistic \
                if len(means) >= 3 else float("nan")
            cells.append(f"{rho:.2f}")
        early.append(f"| {regime} | " + " | ".join(cells) + " |")
    configs = ["", "Regimes (overrides of the target config):", ""] + \
              [f"- `{r}`: {json.dumps(st.proxies.get(r, {}))}" for r in results]
    text = "\n".join(lines + scores + early + noise_ceiling(results["target"], seeds) + configs)
    st.results.mkdir(parents=True, exist_ok=True)
    name = st.dataset.upper().replace("CIFAR", "CIFAR-")
    scored = "the exact test split" if st.score == "test" else \
        f"a dev split of {DEV_SIZE} train images (split seed {DEV_SPLIT_SEED}) for every regime"
    header = (f"# Proxy fidelity on {name}\n\nTarget: `{st.target_config.relative_to(ROOT)}`, scored on "
              f"{scored}; seeds {seeds}. Spearman over the policies that have a target score. Cost is per run, "
              "relative to the target (measured: mean training seconds, including per-epoch validation, on a "
              "2-core machine that may have been shared; nominal: epochs x train images x the width's measured cost per image).\n"
              f"Made by `python experiments/proxy_fidelity.py --dataset {st.dataset} --score {st.score}`.\n\n")
    (st.results / "fidelity.md").write_text(header + text + "\n")
    with open(st.results / "fidelity.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["regime", "policy", "seed", "score", "train_time_s"])
        w.writeheader()
        w.writerows(rows_csv)
    return text


def noise_ceiling(target: dict[str, list[dict]], seeds: list[int]) -> list[str]:
    """How well the target ranks the panel against itself from one seed to another: no proxy
    can be expected to agree with the target's ranking better than the target's own seeds do."""
    from scipy.stats import spearmanr

    per_seed = {s: {n: score_of(f, "target") for n, fs in target.items() for f in fs if f["seed"] == s} for s in seeds}
    out = ["", "Noise ceiling: the target against itself, seed by seed (Spearman over the policies both seeds have), "
           "and the seed spread beside the spread of the panel:", ""]
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            common = [n for n in per_seed[a] if n in per_seed[b]]
            # `none` sits 10 points below the rest: it makes any ranking look good, so also without it
            for label, names in (("", common), (" (without `none`)", [n for n in common if n != "none"])):
                if len(names) >= 3:
                    rho = spearmanr([per_seed[a][n] for n in names], [per_seed[b][n] for n in names]).statistic
                    out.append(f"- target seed {a} vs seed {b}{label}: Spearman {rho:.2f} over {len(names)} policies")
    both = {n: [score_of(f, "target") for f in fs] for n, fs in target.items() if len(fs) >= 2}
    if both:
        pooled = math.sqrt(statistics.fmean(statistics.variance(v) for v in both.values()))
        means = [statistics.fmean(v) for v in both.values()]
        out.append(f"- pooled seed std of a policy's target score: {100 * pooled:.2f} points; std of the policy means "
                   f"across the panel: {100 * statistics.stdev(means):.2f} points ({len(both)} policies with 2+ seeds)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(STUDIES), default="cifar10", help="whose regime (default cifar10)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--only", nargs="+", help="run only these regimes (target and/or proxy names)")
    ap.add_argument("--data-dir", help="data root (else $AUTOSOFT_DATA)")
    ap.add_argument("--table-only", action="store_true", help="only rebuild the report from finished runs")
    ap.add_argument("--score", choices=("dev", "test"), default="dev",
                    help="dev (default): every regime scored on a dev split of train; test: the target on the "
                         "test split (the stored studies)")
    ap.add_argument("--doc", metavar="FILE", help="also write the summary table into FILE (experiments/RESULTS.md) "
                    "between its fidelity markers")
    args = ap.parse_args(argv)
    return exit_status(lambda: print(study(args)))


def study(args) -> str:
    """Run what is missing (unless --table-only), then write and return the report."""
    st = STUDIES[args.dataset]
    target = TrainConfig.from_dict(json.loads(st.target_config.read_text()))
    if args.score == "dev":
        st = on_dev_split(st)
        target = TrainConfig.from_dict({**target.to_dict(), "split_seed": DEV_SPLIT_SEED, "val_size": DEV_SIZE,
                                        "eval_test": False})
    if args.data_dir:
        target.data_dir = args.data_dir
    policies = panel(st)
    regs = regimes(st, target)
    unknown = set(args.only or ()) - set(regs)
    if unknown:
        raise AutosoftError(f"unknown regime {sorted(unknown)[0]!r}; allowed: {', '.join(regs)}")
    if not args.table_only:
        run_all(policies, regs, args.seeds, set(args.only or ()), st.dropped)
    report = write_report(st, collect(policies, regs, args.seeds), regs, args.seeds)
    if args.doc:
        summary = report.split("\n\n")[0]  # the table of Spearman and cost per regime
        write_between_markers(Path(args.doc), summary, st.marker)
    return report


if __name__ == "__main__":
    sys.exit(main())
