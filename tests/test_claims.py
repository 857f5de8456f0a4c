"""experiments/claims.py: the seed paper's three claims on a table of made-up runs with known answers."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "claims.py"


def _table(folder: Path, rows: dict) -> None:
    """rows: name -> list of (top1, occlusion@0.5, ece), one per seed."""
    for name, seeds in rows.items():
        for seed, (top1, occl, ece) in enumerate(seeds):
            run = folder / f"{name}-s{seed}"
            run.mkdir(parents=True)
            (run / "final.json").write_text(json.dumps({"top1": top1, "occlusion_acc@0.5": occl, "ece": ece}))


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_each_claim_is_measured_against_the_same_augmentation_with_hard_labels(tmp_path):
    _table(tmp_path, {"baseline": [(0.70, 0.30, 0.10), (0.70, 0.32, 0.12)],
                      "hard": [(0.71, 0.31, 0.10), (0.73, 0.31, 0.10)],     # +2 top-1, +0 occlusion
                      "soft": [(0.73, 0.40, 0.04), (0.75, 0.40, 0.04)]})    # +4 top-1, +9 occlusion
    doc = tmp_path / "RESULTS.md"
    doc.write_text("intro\n<!-- claims:start -->\nold\n<!-- claims:end -->\nrest\n")
    r = _run("--results", tmp_path, "--seeds", 0, 1, 2, "--pair", "soft:hard", "--doc", doc)
    assert r.returncode == 0, r.stderr
    top1, occlusion, ece = [line for line in r.stdout.splitlines() if line.startswith("| soft vs hard")]
    assert "(2 vs 2 seeds; baseline 2)" in top1
    # top-1 gains +2.00 and +4.00 (s.e. of each: sqrt(1.41^2/2 + 0/2) = 1.00): exactly doubled
    assert "| +2.00 ± 1.00 | +4.00 ± 1.00 | 2.00x | yes | +2.00 ± 1.41 |" in top1
    assert "hard labels gain nothing, soft ones do | yes |" in occlusion and "+9.00 ±" in occlusion
    assert "| 10.00 ± 0.00 | 4.00 ± 0.00 | 0.40x | yes | -6.00 ± 0.00 |" in ece
    text = doc.read_text()
    assert text.startswith("intro\n<!-- claims:start -->\n| pair") and text.endswith("<!-- claims:end -->\nrest\n")
    assert "\nold\n" not in text and (tmp_path / "claims.md").read_text().startswith("| pair")


def test_a_claim_that_fails_says_no(tmp_path):
    _table(tmp_path, {"baseline": [(0.70, 0.30, 0.10), (0.70, 0.30, 0.10)],
                      "hard": [(0.74, 0.32, 0.08), (0.74, 0.32, 0.08)],
                      "soft": [(0.72, 0.33, 0.06), (0.72, 0.33, 0.06)]})
    r = _run("--results", tmp_path, "--seeds", 0, 1, "--pair", "soft:hard")
    top1, occlusion, ece = [line for line in r.stdout.splitlines() if line.startswith("| soft vs hard")]
    assert "| 0.50x | no |" in top1 and "| 1.50x | no |" in occlusion and "| 0.75x | no |" in ece


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    _table(tmp_path, {"baseline": [(0.7, 0.3, 0.1)] * 2, "hard": [(0.7, 0.3, 0.1)]})
    for args, message in [(("--pair", "soft"), "expected SOFT:HARD"),
                          (("--pair", "baseline:hard"), "row 'hard' has 1 finished run(s) among seeds 0 1 2"),
                          (("--pair", "baseline:baseline", "--doc", tmp_path / "none.md"), "none.md: no such file")]:
        r = _run("--results", tmp_path, *args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    r = _run("--results", tmp_path / "missing", "--pair", "a:b")
    assert r.returncode == 2 and "no such folder" in r.stderr
