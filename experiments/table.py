"""Train policies x seeds at one CPU-feasible schedule and write the comparison table.

Each run is a normal `autosoft train` run directory under --results; a run whose
final.json exists is skipped and an unfinished one resumes, so the table can be
completed across sessions. Usage (what produced experiments/results/cifar10_cpu):

    python experiments/table.py --config experiments/configs/cifar10_cpu.json \
        --results experiments/results/cifar10_cpu --seeds 0 1 2 \
        --policy baseline autoaugment-cifar10 randaugment trivialaugment softaug

A searched policy joins the table as NAME=PATH, e.g. searched=runs/search/policy.json.
`--split dev` is for design studies (regime pilots): the runs score on a dev split of
--dev-size images held out of train, the same images for every run and seed (split seed
DEV_SPLIT_SEED), and never load the test split, which stays for the final tables.
`--doc experiments/RESULTS.md --marker NAME` also writes the table there, between the lines
<!-- NAME:start --> and <!-- NAME:end --> (experiments/search_evidence.sh does). With
--table-only nothing is trained: the table is rebuilt from the finished runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from autosoft.errors import AutosoftError
from autosoft.policy import load_policy, same_training
from autosoft.train import TrainConfig, train

# Test splits known by their pixels' SHA-256 (Dataset.pixels_sha256, recorded in final.json).
# Runs recorded before that field existed were all measured on an old offline CIFAR-10 copy
# whose test split was 90% JPEG-decoded: they are marked, never mixed silently with new ones.
KNOWN_TEST_SPLITS = {
    "177777c33ba79825320efa646ad04a94bdc3c80e4ebe3bd21724f8cdfd4b9d56": "the exact CIFAR-10 test split",
    "83c56492b2c11211ad1bb2dbd4f2eef4170a0441e41a41f3039c3144b1f5a511": "the exact CIFAR-100 test split",
}
OLD_COPY = "the OLD JPEG-degraded CIFAR-10 test copy (not comparable with the exact split)"

COLUMNS = [("top1", "top-1"), ("ece", "ECE"), ("ece_ts", "ECE (T-scaled)"), ("nll", "NLL"),
           ("occlusion_acc@0.25", "occl. 25%"), ("occlusion_acc@0.5", "occl. 50%"),
           ("shift_acc@4px", "shift 4px"), ("shift_acc@8px", "shift 8px")]
# --split dev: what a validation pass measures (autosoft.metrics.validation_metrics), on the dev split.
DEV_COLUMNS = [("val_acc", "top-1 (dev)"), ("val_ece", "ECE"), ("val_nll", "NLL"),
               ("val_occlusion_acc", "occl. 25%"), ("val_shift_acc", "shift 4px")]
# The dev split's seed: one set of held-out train images for every run, whatever its seed, so
# that policies are compared on the same images (as the search's confirmation does), and not
# the split of any search (autosoft.search.proxy.CONFIRM_SPLIT_SEED) or proxy (the search seed).
DEV_SPLIT_SEED = 2_000_003
DEV_SIZE = 5000   # an accuracy's std error is ~0.7 points at 5,000 images
# The fields that say which split a run scored on: a finished run counts only for the same split.
SPLIT_FIELDS = ("eval_test", "val_size", "split_seed")


def parse_policies(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, _, path = item.partition("=")
        out[name] = path or name
    return out


def run_all(config: TrainConfig, policies: dict[str, str], seeds: list[int], results: Path) -> None:
    for seed in seeds:  # seed-major: a partial table already has every policy at seed 0
        for name, source in policies.items():
            run_dir = results / f"{name}-s{seed}"
            if (run_dir / "final.json").exists():
                continue  # collect() checks it is this policy's run
            t0 = time.time()
            cfg = TrainConfig.from_dict({**config.to_dict(), "seed": seed})
            final = train(cfg, load_policy(source), run_dir=run_dir)
            scores = ("top1", "ece") if cfg.eval_test else ("val_acc", "val_ece")
            print(f"{name} seed {seed}: " + " ".join(f"{k} {final[k]:.4f}" for k in scores) +
                  f" ({time.time() - t0:.0f}s)", flush=True)


def dev_split_config(config: TrainConfig, dev_size: int = DEV_SIZE) -> TrainConfig:
    """`config` scored on the dev split: `dev_size` train images held out, one split for every seed, no test."""
    cfg = TrainConfig.from_dict({**config.to_dict(), "val_size": dev_size, "split_seed": DEV_SPLIT_SEED,
                                 "eval_test": False})
    cfg.validate()
    return cfg


def check_run(run_dir: Path, policy, name: str, config: TrainConfig | None = None) -> None:
    """A finished run stands for `name` only if it trained this very policy (names get reused) and,
    given the table's config, scored on the split this table is of (test, or the same dev split)."""
    recorded = json.loads((run_dir / "config.json").read_text())
    if not same_training(recorded["policy"], policy):
        raise AutosoftError(f"{run_dir} holds a finished run of another policy than {name}={policy.name or '?'}; "
                            "give this policy another name, or move that run away")
    if config is None:
        return
    ran, wanted = recorded.get("train", {}), config.to_dict()
    differs = [k for k in SPLIT_FIELDS if k in ran and ran[k] != wanted[k]]
    if differs:
        k = differs[0]
        raise AutosoftError(f"{run_dir} scored on another split ({k} {ran[k]!r}, this table's {wanted[k]!r}); "
                            "keep test and dev runs in separate --results folders")


def collect(policies: dict[str, str], seeds: list[int], results: Path,
            config: TrainConfig | None = None) -> dict[str, list[dict]]:
    rows = {}
    for name, source in policies.items():
        policy, finals = load_policy(source), []
        for seed in seeds:
            path = results / f"{name}-s{seed}" / "final.json"
            if path.exists():
                check_run(path.parent, policy, name, config)
                finals.append(json.loads(path.read_text()))
        rows[name] = finals
    return rows


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:  # one seed has no spread to show
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} ± {100 * statistics.stdev(values):.2f}"


def test_split_of(finals: list[dict]) -> str:
    """In words, which test split these runs were measured on."""
    names = {KNOWN_TEST_SPLITS.get(f.get("test_pixels_sha256"), f"an unknown test split ({f.get('test_pixels_sha256')})")
             if "test_pixels_sha256" in f else OLD_COPY for f in finals}
    return " and ".join(sorted(names)) or "-"


def write_table(rows: dict[str, list[dict]], results: Path, config: TrainConfig) -> str:
    columns = COLUMNS if config.eval_test else DEV_COLUMNS
    header = "| policy | runs | " + " | ".join(label for _, label in columns) + " | train s/run |"
    lines = [header, "|" + "---|" * (len(columns) + 3)]
    for name, finals in rows.items():
        cells = [_fmt([f[k] for f in finals if f.get(k) is not None]) for k, _ in columns]
        secs = f"{statistics.fmean(f['train_time_s'] for f in finals):.0f}" if finals else "-"
        lines.append(f"| {name} | {len(finals)} | " + " | ".join(cells) + f" | {secs} |")
    text = "\n".join(lines)
    if config.eval_test:
        split = test_split_of([f for finals in rows.values() for f in finals])
        measured = (f"measured on {split}; ECE with 15 equal-width bins; temperature fitted on a "
                    f"{config.val_size}-image validation split held out of train")
    else:
        measured = (f"measured on a dev split of {config.val_size} images held out of train, the same for every "
                    f"run (split seed {config.split_seed}); the test split was not loaded; ECE with 15 bins")
    note = (f"\nAll numbers in % (mean ± std over seeds), {measured}.\n"
            f"Config: {json.dumps(config.to_dict())}\n")
    (results / "table.md").write_text(text + "\n" + note)
    return text


def write_between_markers(path: Path, table: str, marker: str = "table") -> None:
    """Replace what stands between the lines <!-- MARKER:start --> and <!-- MARKER:end --> of `path` with `table`."""
    if not path.is_file():
        raise AutosoftError(f"{path}: no such file (the document to write between its {marker} markers)")
    text = path.read_text()
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise AutosoftError(f"{path}: expected one {start} line followed by one {end} line")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    path.write_text(f"{head}{start}\n{table}\n{end}{tail}")


def check_doc(doc: str | None) -> None:
    """--doc FILE must exist: checked before a script writes or trains anything."""
    if doc and not Path(doc).is_file():
        raise AutosoftError(f"--doc {doc}: no such file")


def publish(text: str, doc: str | None, marker: str) -> None:
    """A report script's output: `text` on stdout and, with --doc FILE, between FILE's markers
    (FILE checked first, so a bad --doc prints nothing)."""
    check_doc(doc)
    print(text)
    if doc:
        write_between_markers(Path(doc), text, marker)


def exit_status(body, prefix: str = "error") -> int:
    """Run a script's main body: 0, or 2 with its AutosoftError as one line on stderr (bad input
    a user can fix, as the CLI reports it; anything else is a bug and keeps its traceback)."""
    try:
        body()
    except AutosoftError as e:
        print(f"{prefix}: {e}", file=sys.stderr)
        return 2
    return 0


def plot(rows: dict[str, list[dict]], results: Path, on_test: bool = True) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    keys = ([("top1", "test top-1"), ("ece", "ECE"), ("occlusion_acc@0.5", "50% occluded"), ("shift_acc@8px", "8 px shift")]
            if on_test else [("val_acc", "dev top-1"), ("val_ece", "ECE"), ("val_occlusion_acc", "25% occluded"),
                             ("val_shift_acc", "4 px shift")])
    fig = Figure(figsize=(4 * len(keys), 4))
    FigureCanvasAgg(fig)
    names = [n for n, f in rows.items() if f]
    for i, (key, label) in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for j, name in enumerate(names):
            vals = [100 * f[key] for f in rows[name] if f.get(key) is not None]
            ax.scatter([j] * len(vals), vals, s=18, alpha=0.6)
            ax.errorbar([j], [statistics.fmean(vals)], yerr=[statistics.stdev(vals) if len(vals) > 1 else 0],
                        fmt="_", color="k", capsize=6, markersize=18)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(label + " (%)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(results / "table.png", dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="JSON train config (see experiments/configs/)")
    ap.add_argument("--results", required=True, help="folder of run directories and the table")
    ap.add_argument("--policy", nargs="+", required=True, help="built-in names or NAME=PATH")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--data-dir", help="data root (else $AUTOSOFT_DATA)")
    ap.add_argument("--table-only", action="store_true", help="only rebuild the table from finished runs")
    ap.add_argument("--doc", metavar="FILE",
                    help="also write the table into FILE (experiments/RESULTS.md) between its markers")
    ap.add_argument("--marker", default="table", help="FILE's markers: <!-- MARKER:start --> ... <!-- MARKER:end -->")
    ap.add_argument("--split", choices=("test", "dev"), default="test",
                    help="test (default: the final tables) | dev: score on a dev split held out of train "
                         "(design studies; the test split is not loaded)")
    ap.add_argument("--dev-size", type=int, default=DEV_SIZE, help=f"dev split images (default {DEV_SIZE})")
    args = ap.parse_args(argv)
    return exit_status(lambda: make_table(args))


def make_table(args) -> None:
    """Train what is missing (unless --table-only), then write, print and plot the table."""
    check_doc(args.doc)   # before hours of training, not after
    try:
        raw = json.loads(Path(args.config).read_text())
    except (OSError, ValueError) as e:
        raise AutosoftError(f"--config {args.config}: cannot read a JSON train config ({e})") from None
    config = TrainConfig.from_dict(raw)
    if args.data_dir:
        config.data_dir = args.data_dir
    if args.split == "dev":
        config = dev_split_config(config, args.dev_size)
    policies = parse_policies(args.policy)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        collect(policies, args.seeds, results, config)  # a finished run of another policy or split: fail now
        run_all(config, policies, args.seeds, results)
    rows = collect(policies, args.seeds, results, config)
    table = write_table(rows, results, config)
    publish(table, args.doc, args.marker)
    plot(rows, results, on_test=config.eval_test)


if __name__ == "__main__":
    sys.exit(main())
