"""experiments/pipeline_costs.py: made-up search folders with known stage times, seeds and copied runs."""

import datetime
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "pipeline_costs.py"


def _search(folder: Path, starts: list[dict], seeds: dict, *, winner: str, copied_runs=(), unfinished_runs=()) -> Path:
    """seeds: policy -> (kind, seeds in the race); copied_runs: run folder names with reused_from.json."""
    (folder / "confirm").mkdir(parents=True)
    (folder / "wall_times.jsonl").write_text("".join(json.dumps(s) + "\n" for s in starts))
    rows = ["policy,kind,proxy_score,seeds,winner"]
    for name, (kind, n) in seeds.items():
        rows.append(f"{name},{kind},,{n},{name == winner}")
        for seed in range(n):
            run = folder / "confirm" / f"{name}-s{seed}"
            run.mkdir()
            run.joinpath("final.json").write_text("{}")
            if run.name in copied_runs:
                run.joinpath("reused_from.json").write_text('{"source": "elsewhere"}')
    for name in unfinished_runs:   # a run that never finished: not counted
        (folder / "confirm" / name).mkdir()
    (folder / "confirm.csv").write_text("\n".join(rows) + "\n")
    return folder


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_stage_sums_shares_seeds_and_copied_work(tmp_path):
    a = _search(tmp_path / "search-a",
                [{"started": "t0", "trials": 2000.0, "running": True},          # killed mid-trials
                 {"started": "t1", "trials": 1000.0, "confirmation": 900.0},
                 {"started": "t2", "confirmation": 100.0}],
                {"trial-3": ("searched", 4), "trial-9": ("searched", 2), "baseline": ("baseline", 2)},
                winner="trial-3", copied_runs={"baseline-s0", "baseline-s1"}, unfinished_runs={"trial-9-s2"})
    b = _search(tmp_path / "search-b",
                [{"started": "t0", "trials": 600.0, "copied_from": "search-a"},  # trials copied in
                 {"started": "t3", "rungs": 300.0, "confirmation": 300.0}],
                {"trial-1": ("searched", 2), "autoaugment-cifar10": ("baseline", 3)}, winner="autoaugment-cifar10")
    doc = tmp_path / "RESULTS.md"
    doc.write_text("intro\n<!-- costs:start -->\nold\n<!-- costs:end -->\nrest\n")
    r = _run(a, b, "--doc", doc)
    assert r.returncode == 0, r.stderr
    rows = {line.split(" | ")[0][2:]: line for line in r.stdout.splitlines() if line.startswith("| search-")}
    # 3,000 s of trials + 1,000 s of confirmation = 4,000 s = 1 h 07 min; 8 runs finished, 2 of them copied
    assert rows["search-a"] == ("| search-a | 3 (1 killed) | 3,000 (75%) | - | 1,000 (25%) | 1 h 07 min | 6 + 2 | "
                                "trial-3* 4, trial-9 2 | baseline 2 |")
    # the copied trials count in the total and are marked; the copied line is not a start of this search
    assert rows["search-b"] == ("| search-b | 1 | 600 (50%)† | 300 (25%) | 300 (25%) | 0 h 20 min | 5 + 0 | "
                                "trial-1 2 | autoaugment-cifar10* 3 |")
    assert r.stdout.rstrip().endswith("† search-b's trials: copied in from search-a (that search's own)")
    text = doc.read_text()
    assert text.startswith("intro\n<!-- costs:start -->\nWall seconds per stage") and "\nold\n" not in text


def test_a_recent_running_line_is_told_by_its_process_on_its_host(tmp_path):
    """A start marked running, its line seconds old: if the line names this host and a process
    that has gone, the start was killed (counted); if the process is alive, it is running (refused)."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    now = datetime.datetime.now().isoformat(timespec="seconds")
    line = {"started": now, "trials": 1.0, "running": True, "host": socket.gethostname()}
    killed = _search(tmp_path / "killed", [{**line, "pid": int(gone.stdout)}], {"trial-1": ("searched", 1)},
                     winner="trial-1")
    r = _run(killed)
    assert r.returncode == 0 and "| killed | 1 (1 killed) |" in r.stdout, r.stderr
    running = _search(tmp_path / "running", [{**line, "pid": os.getpid()}], {"trial-1": ("searched", 1)},
                      winner="trial-1")
    r = _run(running)
    assert r.returncode == 2 and "a search is running there" in r.stderr, r.stdout
    # the same process on another host: only its line's clock can tell, and it says running
    elsewhere = _search(tmp_path / "elsewhere", [{**line, "host": "not-" + socket.gethostname(), "pid": int(gone.stdout)}],
                        {"trial-1": ("searched", 1)}, winner="trial-1")
    assert _run(elsewhere).returncode == 2


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    good = _search(tmp_path / "good", [{"started": "t", "trials": 1.0}], {"trial-1": ("searched", 1)}, winner="trial-1")
    bad_line = _search(tmp_path / "bad-line", [{"started": "t", "trials": "soon"}], {"trial-1": ("searched", 1)},
                       winner="trial-1")
    no_csv = tmp_path / "no-csv"
    no_csv.mkdir()
    (no_csv / "wall_times.jsonl").write_text('{"trials": 1}\n')
    bad_csv = _search(tmp_path / "bad-csv", [{"trials": 1.0}], {}, winner="")
    bad_csv.joinpath("confirm.csv").write_text("policy,score\ntrial-1,0.5\n")
    ten_s_ago = (datetime.datetime.now() - datetime.timedelta(seconds=10)).isoformat(timespec="seconds")
    running = _search(tmp_path / "running", [{"started": ten_s_ago, "trials": 10.0, "running": True}],  # now
                      {"trial-1": ("searched", 1)}, winner="trial-1")
    for args, message in [((tmp_path / "none",), "no wall_times.jsonl"),
                          ((running,), "a search is running there"),
                          ((no_csv,), "no confirm.csv"),
                          ((bad_line,), "line 1: not a start's JSON object"),
                          ((bad_csv,), "expected the columns policy, kind, seeds, winner"),
                          ((good, "--doc", tmp_path / "none.md"), "none.md: no such file")]:
        r = _run(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
