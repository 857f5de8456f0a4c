"""Multi-fidelity by images (issue #24, item 3): would rungs with fewer train images rank a
search's confirmed policies as its confirmation does?

A finished search's confirmed policies (every row of its confirm.csv: the searched ones and the
baselines) are trained under the search's own proxy with the train subset cut to a share of the
target's cost (`autosoft.search.proxy.derive_proxy` at cost SHARE: the target's epochs kept,
the batch and lr scaled to about the target's optimizer steps), at each of --shares, seeds
--seeds, all on the proxy's validation split with its split fixed (split_seed = the search's
seed, as in the trials). Share 0.25 is the rule the search's trials ran at. Per share it reports
the Spearman rank correlation of the share's mean scores (the search's objective) with the
confirmation's means, where the confirmation's winner ranks, and the training seconds per run.
Scores are read on validation splits carved from train only: the test split is never loaded.

    python experiments/fidelity_rungs.py experiments/results/search_cifar10_race/search-joint
    python experiments/fidelity_rungs.py SEARCH --shares 0.0625 0.125 0.25 --seeds 0 1 --workers 2
    python experiments/fidelity_rungs.py SEARCH --table-only      # the report from finished runs

Writes experiments/results/fidelity_rungs/<SEARCH's folder>-<SEARCH's name>/ (or --out):
SHARE/NAME-sSEED/ (`autosoft train` run folders), rungs.csv, rungs.md. Resumable: a finished
run is skipped, an unfinished one resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from autosoft.errors import AutosoftError  # noqa: E402
from autosoft.search.proxy import PROXY_COST, rung_config as proxy_rung_config  # noqa: E402
from autosoft.train import TrainConfig, open_train_split, train  # noqa: E402
from experiments.table import exit_status  # noqa: E402

DEFAULT_SHARES = (1 / 16, 1 / 8, PROXY_COST)


def read_search(folder: Path) -> dict:
    """What the study needs of a finished search: its settings, metric, and confirmed policies."""
    settings_file, confirm_csv = folder / "search.json", folder / "confirm.csv"
    if not settings_file.is_file():
        raise AutosoftError(f"{folder}: not a search folder (no search.json)")
    if not confirm_csv.is_file():
        raise AutosoftError(f"{folder}: its confirmation has not finished (no confirm.csv); finish the search first")
    settings = json.loads(settings_file.read_text())
    metric = settings["objectives"][0]
    rows = list(csv.DictReader(confirm_csv.open()))
    policies = {}
    for row in rows:
        source = folder / "confirm" / f"{row['policy']}-s{settings['seed']}" / "policy.json"
        if not source.is_file():
            raise AutosoftError(f"{folder}: the confirmation run of {row['policy']} at seed {settings['seed']} "
                                f"has no policy.json ({source})")
        policies[row["policy"]] = source
    return {"settings": settings, "metric": metric, "maximize": metric != "val_ece", "policies": policies,
            "confirmation": {r["policy"]: float(r[f"{metric}_mean"]) for r in rows},
            "confirm_seeds": {r["policy"]: int(r["seeds"]) for r in rows},
            "winner": next(r["policy"] for r in rows if r["winner"] == "True")}


def rung_config(settings: dict, share: float, n_train: int) -> TrainConfig:
    """The search's proxy with the train subset (and what follows from it) of cost `share`."""
    return TrainConfig.from_dict(proxy_rung_config(settings["proxy"], settings["target"], n_train, share)[0])


def _train_one(config: dict, policy: str, run_dir: str) -> float:
    t0 = time.time()
    train(TrainConfig.from_dict(config), policy, run_dir=run_dir, quiet=True)
    return time.time() - t0


def run_missing(jobs: list[tuple[TrainConfig, Path, Path]], workers: int) -> None:
    """Train every (config, policy file, run folder) without a final.json, `workers` at a time."""
    todo = [(c, p, r) for c, p, r in jobs if not (r / "final.json").exists()]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs finished before; {len(todo)} to train", flush=True)
    # spawn: a fresh interpreter per worker (torch and fork do not mix)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_one, c.to_dict(), str(p), str(r)): r for c, p, r in todo}
        for future in concurrent.futures.as_completed(futures):
            run = futures[future]
            print(f"{run.parent.name}/{run.name}: {future.result():.0f} s", flush=True)


def share_name(share: float) -> str:
    return f"share-{share:g}"


def report(study: dict, shares: list[float], seeds: list[int], out: Path, n_train: int, command: str) -> str:
    from scipy.stats import spearmanr

    metric, names, confirmation = study["metric"], list(study["policies"]), study["confirmation"]
    sign = 1 if study["maximize"] else -1
    conf_order = sorted(names, key=lambda n: -sign * confirmation[n])
    rows, summary = [], []
    for share in shares:
        config = rung_config(study["settings"], share, n_train)
        means, seconds = {}, []
        for name in names:
            scores = []
            for seed in seeds:
                final_file = out / share_name(share) / f"{name}-s{seed}" / "final.json"
                if final_file.exists():
                    final = json.loads(final_file.read_text())
                    scores.append(final[metric])
                    seconds.append(final["train_time_s"])
                    rows.append({"share": share, "policy": name, "seed": seed, metric: final[metric],
                                 "train_time_s": round(final["train_time_s"], 1)})
            if len(scores) == len(seeds):
                means[name] = statistics.fmean(scores)
        done = [n for n in names if n in means]
        rho = float(spearmanr([means[n] for n in done], [confirmation[n] for n in done]).statistic) \
            if len(done) >= 3 else None
        order = sorted(done, key=lambda n: -sign * means[n])
        winner = study["winner"]
        summary.append({"share": share, "config": config, "policies": len(done), "rho": rho,
                        "top": order[0] if order else None,
                        "winner_rank": order.index(winner) + 1 if winner in order else None,
                        "s_per_run": statistics.fmean(seconds) if seconds else None, "means": means})
    with (out / "rungs.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["share", "policy", "seed", metric, "train_time_s"])
        writer.writeheader()
        writer.writerows(rows)

    settings = study["settings"]
    seeds_used = ", ".join(f"{n} {study['confirm_seeds'][n]}" for n in conf_order)
    lines = [f"# Fidelity by images: {settings.get('study_name', '')}", "",
             f"Policies: the {len(names)} of the search's confirm.csv; score: {metric} on the proxy's validation "
             f"split ({settings['proxy']['val_size']} images, split fixed), mean over seeds {' '.join(map(str, seeds))}; "
             f"reference: the confirmation's means (the target's {settings['confirmation']['config']['epochs']} epochs, "
             f"{seeds_used} seeds). "
             f"Confirmation winner: {study['winner']}.", "",
             "| share of the target's cost | train images | batch | epochs | policies | Spearman vs confirmation "
             "| rung's top | winner's rank | train s/run |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        c = s["config"]
        rho = "—" if s["rho"] is None else f"{s['rho']:.2f}"
        sec = "—" if s["s_per_run"] is None else f"{s['s_per_run']:.0f}"
        lines.append(f"| {s['share']:g} | {c.train_size} | {c.batch_size} | {c.epochs} | {s['policies']} | {rho} | "
                     f"{s['top'] or '—'} | {s['winner_rank'] or '—'} | {sec} |")
    lines += ["", "| policy | confirmation | " + " | ".join(f"share {s['share']:g}" for s in summary) + " |",
              "|---|---|" + "---|" * len(summary)]
    for name in conf_order:
        cells = [f"{100 * s['means'][name]:.2f}" if name in s["means"] else "—" for s in summary]
        lines.append(f"| {name} | {100 * confirmation[name]:.2f} | " + " | ".join(cells) + " |")
    lines += ["", f"Made by `{command}`."]
    text = "\n".join(lines) + "\n"
    (out / "rungs.md").write_text(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("search", type=Path, help="a finished search's folder (search.json, confirm.csv, confirm/)")
    ap.add_argument("--shares", type=float, nargs="+", default=list(DEFAULT_SHARES),
                    help="shares of the target's cost, in (0, 1] (default: 1/16 1/8 1/4)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--workers", type=int, default=2, help="runs trained at once (default 2)")
    ap.add_argument("--out", type=Path, help="default: experiments/results/fidelity_rungs/<folder>-<name>")
    ap.add_argument("--table-only", action="store_true", help="train nothing; the report from finished runs")
    args = ap.parse_args(argv)
    command = " ".join(["python experiments/fidelity_rungs.py", *(sys.argv[1:] if argv is None else argv)])
    return exit_status(lambda: study_rungs(args, command), prefix="fidelity_rungs")


def study_rungs(args, command: str) -> None:
    """Train the missing runs (unless --table-only), then print the report."""
    bad = [s for s in args.shares if not 0 < s <= 1]
    if bad:
        raise AutosoftError(f"--shares: {bad[0]:g} is not a share of the target's cost; expected numbers in (0, 1]")
    if args.workers < 1:
        raise AutosoftError(f"--workers: expected an integer >= 1, got {args.workers}")
    study = read_search(args.search)
    target = TrainConfig.from_dict(study["settings"]["target"])
    n_train = len(open_train_split(target))   # missing data fails here, before anything is written
    shares = sorted(set(args.shares))
    configs = {share: rung_config(study["settings"], share, n_train) for share in shares}
    search = args.search.resolve()
    out = args.out or ROOT / "experiments/results/fidelity_rungs" / f"{search.parent.name}-{search.name}"
    jobs = [(TrainConfig.from_dict({**configs[share].to_dict(), "seed": seed}), source,
             out / share_name(share) / f"{name}-s{seed}")
            for seed in args.seeds for share in shares for name, source in study["policies"].items()]
    out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        run_missing(jobs, args.workers)
    print(report(study, shares, args.seeds, out, n_train, command))


if __name__ == "__main__":
    sys.exit(main())
