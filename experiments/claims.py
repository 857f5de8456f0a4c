"""The seed paper's three claims, checked on a finished table.

Soft Augmentation (Liu et al., CVPR 2023) claims that, combined with aggressive augmentation,
soft targets 1) double the top-1 gain of the augmentation over the baseline, 2) improve
occlusion robustness by up to 4x, 3) halve the expected calibration error. Each --pair
SOFT:HARD names two rows of a table made by experiments/table.py that differ only in the
targets (the same augmentation with soft and with hard labels); --baseline is the row both
gains are measured from. A gain's spread is the standard error of a difference of two means
(sqrt(s1^2/n1 + s2^2/n2)); a claim "holds" on the means, and the last column says whether
the soft-vs-hard difference is larger than its own standard error at all.

    python experiments/claims.py --results experiments/results/cifar10_w32_exact --seeds 0 1 2 3 4 \\
        --baseline baseline --pair softaug:softcrop-hard
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from autosoft.errors import AutosoftError  # noqa: E402
from experiments.table import check_doc, exit_status, publish  # noqa: E402

OCCLUSION = "occlusion_acc@0.5"


def load_rows(results: Path, names: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    rows = {}
    for name in names:
        finals = [json.loads(p.read_text()) for s in seeds if (p := results / f"{name}-s{s}" / "final.json").exists()]
        if len(finals) < 2:
            raise AutosoftError(f"{results}: row {name!r} has {len(finals)} finished run(s) among seeds "
                           f"{' '.join(map(str, seeds))}; a claim needs at least 2 (run experiments/table.py first)")
        rows[name] = finals
    return rows


def stats(finals: list[dict], key: str) -> tuple[float, float, int]:
    values = [100 * f[key] for f in finals]
    return statistics.fmean(values), statistics.stdev(values), len(values)


def difference(a: tuple, b: tuple) -> tuple[float, float]:
    """a - b for two (mean, std, n), with the standard error of that difference."""
    return a[0] - b[0], math.sqrt(a[1] ** 2 / a[2] + b[1] ** 2 / b[2])


def check_pair(rows: dict, soft: str, hard: str, baseline: str) -> list[dict]:
    """One row per claim: what hard and soft targets measure, the ratio the claim is about, the verdict."""
    out = []
    for claim, key in (("1. top-1 gain over the baseline doubles", "top1"),
                       ("2. occlusion (50%) gain over the baseline multiplies (up to 4x)", OCCLUSION)):
        base, with_hard, with_soft = (stats(rows[name], key) for name in (baseline, hard, soft))
        gain_hard, gain_soft = difference(with_hard, base), difference(with_soft, base)
        if gain_hard[0] <= 0:
            holds = gain_soft[0] > 0
            measured = "hard labels gain nothing" + (", soft ones do" if holds else ", nor do soft ones")
        else:
            holds = gain_soft[0] / gain_hard[0] >= 2.0  # "doubles", "multiplies"
            measured = f"{gain_soft[0] / gain_hard[0]:.2f}x"
        out.append({"claim": claim, "hard": f"{gain_hard[0]:+.2f} ± {gain_hard[1]:.2f}",
                    "soft": f"{gain_soft[0]:+.2f} ± {gain_soft[1]:.2f}", "measured": measured,
                    "holds": holds, "soft_vs_hard": difference(with_soft, with_hard)})
    ece_hard, ece_soft = stats(rows[hard], "ece"), stats(rows[soft], "ece")
    ratio = ece_soft[0] / ece_hard[0]
    out.append({"claim": "3. ECE halves", "hard": f"{ece_hard[0]:.2f} ± {ece_hard[1]:.2f}",
                "soft": f"{ece_soft[0]:.2f} ± {ece_soft[1]:.2f}", "measured": f"{ratio:.2f}x",
                "holds": ratio <= 0.5, "soft_vs_hard": difference(ece_soft, ece_hard)})
    return out


def report(rows: dict, pairs: list[tuple[str, str]], baseline: str) -> str:
    lines = ["| pair (soft vs hard) | claim | hard labels | soft targets | soft / hard | claim holds | "
             "soft - hard (± s.e.) |", "|---|---|---|---|---|---|---|"]
    for soft, hard in pairs:
        runs = f"{len(rows[soft])} vs {len(rows[hard])} seeds; baseline {len(rows[baseline])}"
        for r in check_pair(rows, soft, hard, baseline):
            diff, se = r["soft_vs_hard"]
            lines.append(f"| {soft} vs {hard} ({runs}) | {r['claim']} | {r['hard']} | {r['soft']} | {r['measured']} | "
                         f"{'yes' if r['holds'] else 'no'} | {diff:+.2f} ± {se:.2f}"
                         f"{'' if abs(diff) > se else ' (within its s.e.)'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True, help="the table's folder of run directories (NAME-sSEED)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--baseline", default="baseline", help="the row both gains are measured from")
    ap.add_argument("--pair", action="append", required=True, metavar="SOFT:HARD",
                    help="two rows that differ only in soft vs hard targets (repeatable)")
    ap.add_argument("--doc", metavar="FILE",
                    help="also write the report into FILE (experiments/RESULTS.md) between its markers")
    ap.add_argument("--marker", default="claims", help="FILE's markers: <!-- MARKER:start --> ... <!-- MARKER:end -->")
    args = ap.parse_args(argv)
    command = "python experiments/claims.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return exit_status(lambda: check_claims(args, command))


def check_claims(args, command: str) -> None:
    """The report on the table's finished runs, into claims.md, stdout and --doc."""
    pairs = []
    for item in args.pair:
        soft, sep, hard = item.partition(":")
        if not (sep and soft and hard):
            raise AutosoftError(f"--pair {item!r}: expected SOFT:HARD, two row names of the table")
        pairs.append((soft, hard))
    check_doc(args.doc)   # before claims.md is written
    results = Path(args.results)
    if not results.is_dir():
        raise AutosoftError(f"--results {results}: no such folder")
    names = list(dict.fromkeys([args.baseline] + [n for p in pairs for n in p]))
    text = report(load_rows(results, names, args.seeds), pairs, args.baseline)
    (results / "claims.md").write_text(f"{text}\n\nMade by `{command}`.\n")
    publish(text, args.doc, args.marker)


if __name__ == "__main__":
    sys.exit(main())
