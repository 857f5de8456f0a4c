"""Clean accuracy against robustness in finished races (issue #24): is any confirmed policy
ahead of the reference (AutoAugment) on clean validation accuracy, and what does it give up?

For each search folder, every searched policy its race confirmed (confirm.csv) is compared with
the reference policy, paired by seed over the seeds both ran (the race's runs share one fixed
validation split, so the seed is the only thing that differs): clean, occlusion-25%, 4 px-shift
and robust validation accuracy (points, mean ± s.e. of the per-seed differences). Each policy is
paired with the reference's runs of its own race: a run of the same seed and config trained in
another race, at another time, can differ (by up to 0.7 points here), so runs are never pooled
across races. Each baseline is listed once, from the race where it ran the most seeds. The
folders must share one confirmation config (one target and split). Read from the
runs' confirm/NAME-sSEED/final.json; validation splits carved from train only, test is never
loaded. The bar of issue #24 asks for a test top-1 lead over AutoAugment; the race winners'
test edges were smaller than their validation edges (experiments/RESULTS.md), so a policy that
is not clearly ahead here is not a candidate to beat it.

Beside the race's clean difference stands the one the proxy measured, the score that put the
policy in the race (one seed each, the policy's trial minus the reference's: trials.csv, or
for a successive-halving search the runs of its last rung, rungs/cost-C/): how much of a searched
policy's proxy edge survives confirmation, against the baselines', which no selection picked.

    python experiments/race_frontier.py experiments/results/search_cifar10_race/search-joint ...
    python experiments/race_frontier.py SEARCH... --reference autoaugment-cifar10 --doc experiments/RESULTS.md --marker frontier-cifar10
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from autosoft.errors import AutosoftError  # noqa: E402
from autosoft.search.confirm import Candidate, finished_runs  # noqa: E402
from autosoft.search.racing import Paired, paired  # noqa: E402
from autosoft.search.record import candidate_name  # noqa: E402
from autosoft.search.rungs import cost_folder  # noqa: E402
from experiments.table import exit_status, publish  # noqa: E402

METRICS = (("val_acc", "clean"), ("val_occlusion_acc", "occl. 25%"), ("val_shift_acc", "shift 4px"),
           ("val_robust_acc", "robust"))


def read_race(folder: Path) -> tuple[dict, dict[str, dict[str, dict[int, float]]], dict[str, str], str,
                                     dict[str, float]]:
    """A finished race: its confirmation config, {policy: {metric: {seed: score}}}, each policy's
    kind, its winner, and each policy's clean accuracy on the proxy (`proxy_clean`)."""
    settings_file, confirm_csv = folder / "search.json", folder / "confirm.csv"
    if not settings_file.is_file():
        raise AutosoftError(f"{folder}: not a search folder (no search.json)")
    settings = json.loads(settings_file.read_text())
    confirmation = settings.get("confirmation", {})
    # The seeds the race could give a policy, numbered as the search's confirmation stage does.
    cap = confirmation.get("max_seeds") or confirmation.get("seeds")
    if "config" not in confirmation or not cap or "seed" not in settings:
        raise AutosoftError(f"{settings_file}: no seed or confirmation config and seeds (a search before the confirmation stage?)")
    seeds = [settings["seed"] + i for i in range(cap)]
    if not confirm_csv.is_file():
        raise AutosoftError(f"{folder}: no confirm.csv (its race has not finished)")
    rows = list(csv.DictReader(confirm_csv.open()))
    missing = {"policy", "kind", "winner"} - set(rows[0] if rows else ())
    if missing:
        raise AutosoftError(f"{confirm_csv}: no {', '.join(sorted(missing))} column (or no rows): not a race's confirm.csv")
    # finished_runs reads a run by its candidate's name only; the policy itself is not needed here.
    candidates = [Candidate(r["policy"], {}, r["kind"], None) for r in rows]
    finals = finished_runs(folder / "confirm", candidates, seeds)
    scores = {c.name: {m: {s: finals[(c.name, s)][m] for s in seeds
                           if finals.get((c.name, s), {}).get(m) is not None} for m, _ in METRICS}
              for c in candidates}
    winner = next((r["policy"] for r in rows if r["winner"] == "True"), "")
    return (confirmation["config"], scores, {r["policy"]: r["kind"] for r in rows}, winner,
            proxy_clean(folder, settings, candidates))


def proxy_clean(folder: Path, settings: dict, candidates: list[Candidate]) -> dict[str, float]:
    """Each raced policy's clean validation accuracy on the proxy that put it in the race (one
    seed): its trial's row of trials.csv, or, for a halving search (settings' "rungs"), its run
    at the last rung, which retrained the best trials and the baselines at a larger share of the
    images (only that rung is read, so that no difference mixes two shares). {} without either."""
    if settings.get("rungs"):
        last = folder / "rungs" / cost_folder(settings["rungs"]["costs"][-1])
        finals = finished_runs(last, candidates, [settings["seed"]])
        return {name: final["val_acc"] for (name, _), final in finals.items()}
    out = {}
    if (folder / "trials.csv").is_file():
        for row in csv.DictReader((folder / "trials.csv").open()):
            if row.get("state") == "complete" and row.get("val_acc"):
                fixed = None if row["policy"] == "searched" else row["policy"]
                out[candidate_name(int(row["number"]), fixed)] = float(row["val_acc"])
    return {c.name: out[c.name] for c in candidates if c.name in out}


def _points(d: Paired) -> str:
    if d.mean is None:
        return "-"
    return f"{100 * d.mean:+.2f}" + (f" ± {100 * d.se:.2f}" if d.se is not None else "")


def report(folders: list[Path], reference: str) -> str:
    """One row per searched policy of each race, then each baseline once (from the race where it
    pairs with the reference over the most seeds), every policy paired within its own race."""
    rows, baselines, first = [], {}, None
    for folder in folders:
        config, scores, kinds, winner, proxy = read_race(folder)
        if first is not None and config != first:
            raise AutosoftError(f"{folder}: its confirmation ran another config than {folders[0]}'s "
                                "(another target or split): its policies' scores are not comparable with theirs")
        first = config
        if kinds.get(reference) != "baseline":
            raise AutosoftError(f"{folder}: its race did not confirm {reference} as a baseline "
                                f"(baselines: {', '.join(n for n, k in kinds.items() if k == 'baseline')})")
        ref = scores[reference]
        for name, by_metric in scores.items():
            diffs = [paired(by_metric[m], ref[m]) for m, _ in METRICS]
            edge = proxy[name] - proxy[reference] if name in proxy and reference in proxy else None
            if kinds[name] != "baseline":
                rows.append((folder.name, name + (" (exported)" if name == winner else ""), edge, diffs))
            elif name != reference and (name not in baselines or diffs[0].seeds > baselines[name][2][0].seeds):
                baselines[name] = (folder.name, edge, diffs)
    searched = len(rows)
    rows += [(f"baselines ({race})", name, edge, diffs) for name, (race, edge, diffs) in baselines.items()]
    head = ["race", "policy", "seeds", "proxy clean"] + [label for _, label in METRICS]
    lines = [f"Validation accuracy minus {reference}'s, points, paired by seed (mean ± s.e.):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ahead = []
    for race, name, edge, diffs in rows:
        proxy_cell = "-" if edge is None else f"{100 * edge:+.2f}"
        lines.append(f"| {race} | {name} | {diffs[0].seeds} | {proxy_cell} | " + " | ".join(map(_points, diffs)) + " |")
        clean, occl = diffs[0], diffs[1]
        if clean.se is not None and clean.mean > 2 * clean.se and occl.mean >= 0:
            ahead.append(f"{race}/{name}")
    lines += ["", f"Ahead of {reference} on clean accuracy by more than 2 paired s.e., with occlusion at or "
                  f"above its: {', '.join(ahead) if ahead else 'none'}."]
    for label, group in (("searched", rows[:searched]), ("baseline", rows[searched:])):
        both = [(edge, diffs[0].mean) for _, _, edge, diffs in group if edge is not None and diffs[0].mean is not None]
        if both:
            lines.append(f"Clean accuracy minus {reference}'s, mean over the {len(both)} {label} rows with a proxy "
                         f"score: {100 * sum(e for e, _ in both) / len(both):+.2f} on the proxy, "
                         f"{100 * sum(c for _, c in both) / len(both):+.2f} in the race.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("searches", nargs="+", type=Path, help="finished search folders (each with confirm.csv)")
    ap.add_argument("--reference", default="autoaugment-cifar10", help="the policy every other is paired with")
    ap.add_argument("--doc", metavar="FILE", help="also write the table into FILE between its markers")
    ap.add_argument("--marker", default="frontier", help="FILE's markers: <!-- MARKER:start --> ... <!-- MARKER:end -->")
    args = ap.parse_args(argv)
    return exit_status(lambda: publish(report(args.searches, args.reference), args.doc, args.marker))


if __name__ == "__main__":
    sys.exit(main())
