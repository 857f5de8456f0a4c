"""experiments/race_frontier.py: races of made-up confirmation runs with known paired differences."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "race_frontier.py"
REF = "autoaugment-cifar10"


def _race(folder: Path, runs: dict, *, winner: str, kinds: dict, config: dict | None = None,
          rungs: dict | None = None) -> Path:
    """runs: name -> list of (clean, occlusion, shift, robust), one per seed 0, 1, ...; rungs: a
    halving search's search.json "rungs" settings"""
    (folder / "confirm").mkdir(parents=True)
    (folder / "search.json").write_text(json.dumps(
        {"seed": 0, "confirmation": {"config": config or {"val_size": 5000}, "seeds": 2, "max_seeds": 4},
         **({"rungs": rungs} if rungs else {})}))
    rows = ["policy,kind,seeds,winner"]
    for name, seeds in runs.items():
        rows.append(f"{name},{kinds.get(name, 'searched')},{len(seeds)},{name == winner}")
        for seed, (clean, occl, shift, robust) in enumerate(seeds):
            run = folder / "confirm" / f"{name}-s{seed}"
            run.mkdir()
            run.joinpath("final.json").write_text(json.dumps(
                {"val_acc": clean, "val_occlusion_acc": occl, "val_shift_acc": shift, "val_robust_acc": robust}))
    (folder / "confirm.csv").write_text("\n".join(rows) + "\n")
    return folder


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_paired_differences_and_the_policy_ahead_on_both(tmp_path):
    baselines = {REF: "baseline", "baseline": "baseline"}
    a = _race(tmp_path / "search-a", {
        REF: [(0.77, 0.53, 0.70, 0.69), (0.78, 0.54, 0.71, 0.70)],
        "baseline": [(0.75, 0.49, 0.68, 0.66), (0.74, 0.49, 0.68, 0.66)],
        "trial-1": [(0.79, 0.55, 0.70, 0.70), (0.80, 0.56, 0.71, 0.71)],    # +2 clean at both seeds, +2 occlusion
        "trial-2": [(0.76, 0.63, 0.69, 0.71)]}, winner="trial-1", kinds=baselines)
    # a second race of the same target whose seed-0 run of the reference differs from the first's
    # (another machine): its policies pair with its own runs, never the first race's
    b = _race(tmp_path / "search-b", {
        REF: [(0.765, 0.53, 0.70, 0.69), (0.78, 0.54, 0.71, 0.70), (0.76, 0.50, 0.70, 0.67)],
        "trial-7": [(0.775, 0.60, 0.70, 0.70), (0.775, 0.60, 0.70, 0.70), (0.775, 0.60, 0.70, 0.70)]},
        winner="trial-7", kinds=baselines, rungs={"trial_cost": 0.0625, "costs": [0.25]})
    # the proxy scores that put them in the race: race a's trials (trials.csv; a failed trial has
    # no score), race b a halving search whose last rung (cost 0.25, not 0.0625) retrained them
    a.joinpath("trials.csv").write_text(
        "number,state,policy,val_acc\n5,complete,baseline,0.50\n6,complete,autoaugment-cifar10,0.52\n"
        "2,complete,searched,0.56\n3,fail,searched,\n4,complete,searched,0.55\n1,complete,searched,0.57\n")
    for cost, scores in (("0.0625", {REF: 0.40, "trial-7": 0.60}), ("0.25", {REF: 0.60, "trial-7": 0.61})):
        for name, clean in scores.items():
            run = b / "rungs" / f"cost-{cost}" / f"{name}-s0"
            run.mkdir(parents=True)
            run.joinpath("final.json").write_text(json.dumps({"val_acc": clean}))
    doc = tmp_path / "RESULTS.md"
    doc.write_text("intro\n<!-- frontier:start -->\nold\n<!-- frontier:end -->\nrest\n")
    r = _run(a, b, "--doc", doc)
    assert r.returncode == 0, r.stderr
    rows = {line.split(" | ")[1]: line for line in r.stdout.splitlines() if line.startswith("| search-")
            or line.startswith("| baselines")}
    assert rows["trial-1 (exported)"] == ("| search-a | trial-1 (exported) | 2 | +5.00 | +2.00 ± 0.00 | +2.00 ± 0.00 "
                                          "| +0.00 ± 0.00 | +1.00 ± 0.00 |")
    assert rows["trial-2"] == "| search-a | trial-2 | 1 | +4.00 | -1.00 | +10.00 | -1.00 | +2.00 |"  # one seed: no s.e.
    # clean diffs +1.0, -0.5, +1.5: mean +0.67, s.e. 1.04 / sqrt(3) = 0.60, not 2 s.e. ahead
    assert rows["trial-7 (exported)"].startswith("| search-b | trial-7 (exported) | 3 | +1.00 | +0.67 ± 0.60 |")
    assert rows["baseline"].startswith("| baselines (search-a) | baseline | 2 | -2.00 | -3.00 ± 1.00 |")
    assert REF not in rows
    lines = r.stdout.rstrip().splitlines()
    assert lines[-3].endswith("with occlusion at or above its: search-a/trial-1 (exported).")
    # searched: proxy (+5 +4 +1) / 3, race (+2 -1 +0.67) / 3; the baseline: -2 and -3
    assert lines[-2].endswith("mean over the 3 searched rows with a proxy score: +3.33 on the proxy, +0.56 in the race.")
    assert lines[-1].endswith("mean over the 1 baseline rows with a proxy score: -2.00 on the proxy, -3.00 in the race.")
    text = doc.read_text()
    assert text.startswith("intro\n<!-- frontier:start -->\nValidation accuracy minus") and "\nold\n" not in text


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    runs = {REF: [(0.77, 0.53, 0.70, 0.69)], "trial-1": [(0.78, 0.5, 0.7, 0.7)]}
    a = _race(tmp_path / "a", runs, winner="trial-1", kinds={REF: "baseline"})
    other = _race(tmp_path / "other", runs, winner="trial-1", kinds={REF: "baseline"}, config={"val_size": 10})
    for args, message in [((tmp_path / "none",), "no search.json"),
                          ((a, "--reference", "randaugment"), "did not confirm randaugment as a baseline"),
                          ((a, "--reference", "trial-1"), "did not confirm trial-1 as a baseline"),
                          ((a, other), "another config"),
                          ((a, "--doc", tmp_path / "none.md"), "none.md: no such file")]:
        r = _run(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
