"""What each search pipeline cost (issue #24's evidence): wall seconds per stage summed over its
starts, each stage's share, and the seeds its race gave each confirmed policy.

Reads each search folder's wall_times.jsonl (one line per start; a line with "running": true is
a start killed without notice, short by at most 30 s, unless the search is still running, which
is refused; a line with "copied_from" is a stage whose work was copied in from that folder,
such as the halving search's trials) and its
confirm.csv, and counts the race's runs trained in the folder against those copied from other
searches (--reuse-confirmation: confirm/NAME-sSEED/reused_from.json). Wall seconds are as the
starts measured them: starts on machines of different speeds, or beside other jobs, are not
told apart here (the results document says where that happened). Never trains.

    python experiments/pipeline_costs.py experiments/results/search_cifar10_race/search-joint ...
    python experiments/pipeline_costs.py SEARCH... --doc experiments/RESULTS.md --marker costs-cifar10
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from autosoft.errors import AutosoftError  # noqa: E402
from experiments.table import exit_status, publish  # noqa: E402

STAGES = ("trials", "rungs", "confirmation")   # the order a search runs them


def read_costs(folder: Path) -> dict:
    """One finished search: {"stages": {stage: seconds}, "starts", "killed", "copied": {stage: from},
    "runs": (trained, copied), "seeds": [(policy, kind, seeds, winner)]}."""
    times_file, confirm_csv = folder / "wall_times.jsonl", folder / "confirm.csv"
    if not times_file.is_file():
        raise AutosoftError(f"{folder}: no wall_times.jsonl (not a search folder, or one from before it was written)")
    if not confirm_csv.is_file():
        raise AutosoftError(f"{folder}: no confirm.csv (its confirmation has not finished)")
    stages, copied, starts, killed, start = {}, {}, 0, 0, {}
    for number, line in enumerate(times_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            start = json.loads(line)
            seconds = {k: float(start[k]) for k in STAGES if k in start}
        except (ValueError, TypeError) as e:
            raise AutosoftError(f"{times_file}, line {number}: not a start's JSON object of stage seconds ({e})") from None
        for stage, s in seconds.items():
            stages[stage] = stages.get(stage, 0.0) + s
            if start.get("copied_from"):
                copied[stage] = start["copied_from"]
        if not start.get("copied_from"):
            starts += 1
            killed += bool(start.get("running"))
    if start.get("running") and _running_now(start):
        raise AutosoftError(f"{folder}: a search is running there (the last line of {times_file.name} is "
                            "that start's, up to now); run this once it has ended")
    rows = list(csv.DictReader(confirm_csv.open()))
    if not rows or not {"policy", "kind", "seeds", "winner"} <= set(rows[0]):
        raise AutosoftError(f"{confirm_csv}: expected the columns policy, kind, seeds, winner (a finished confirmation's)")
    finished = [run for run in (folder / "confirm").glob("*-s*") if (run / "final.json").is_file()]
    n_copied = sum((run / "reused_from.json").is_file() for run in finished)
    seeds = [(r["policy"], r["kind"], int(r["seeds"]), r["winner"] == "True") for r in rows]
    return {"stages": {k: stages[k] for k in STAGES if k in stages}, "starts": starts, "killed": killed,
            "copied": copied, "runs": (len(finished) - n_copied, n_copied), "seeds": seeds}


def _running_now(start: dict) -> bool:
    """A start marked running whose line was written in the last 5 minutes is running, not killed:
    the running start rewrites it every 30 s (autosoft.search.run.StageTimes), and its start time
    plus its stage seconds is at most that write's time (the line's own clock, so that a copied
    or freshly cloned file reads the same; abs() keeps a machine in another time zone from
    reading an old kill as a start in the future). On the host the line names, a start whose
    process has gone was killed, however recent its line (the clock alone would call it running)."""
    if start.get("host") == socket.gethostname() and isinstance(start.get("pid"), int) and not _alive(start["pid"]):
        return False
    try:
        written = _dt.datetime.fromisoformat(start["started"]).timestamp() + sum(start.get(k, 0.0) for k in STAGES)
    except (KeyError, TypeError, ValueError):
        return False   # no readable start time: counted as the killed start it most likely is
    return abs(time.time() - written) < 300


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)   # signal 0: asks only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True       # it exists, another user's
    return True


def _hours(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _seeds(costs: dict, kind: str) -> str:
    """ "trial-3* 4, trial-9 2": each policy of that kind and its seeds, * the exported one."""
    return ", ".join(f"{p}{'*' if w else ''} {n}" for p, k, n, w in costs["seeds"] if k == kind) or "-"


def report(folders: list[Path]) -> str:
    head = ["search", "starts", *(f"{s} s (share)" for s in STAGES), "total", "race runs: trained + copied",
            "seeds per searched policy", "seeds per baseline"]
    lines = ["Wall seconds per stage, summed over the search's starts (`wall_times.jsonl`), and the race's "
             "seeds per policy (`confirm.csv`; * the exported policy):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for folder in folders:
        c = read_costs(folder)
        total = sum(c["stages"].values())
        cells = []
        for stage in STAGES:
            s = c["stages"].get(stage)
            cells.append("-" if s is None else f"{s:,.0f} ({100 * s / total:.0f}%)" + ("†" if stage in c["copied"] else ""))
            if stage in c["copied"]:
                notes.append(f"† {folder.name}'s {stage}: copied in from {c['copied'][stage]} (that search's own)")
        starts = f"{c['starts']}" + (f" ({c['killed']} killed)" if c["killed"] else "")
        lines.append(f"| {folder.name} | {starts} | " + " | ".join(cells) + f" | {_hours(total)} | "
                     f"{c['runs'][0]} + {c['runs'][1]} | {_seeds(c, 'searched')} | {_seeds(c, 'baseline')} |")
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("searches", nargs="+", type=Path, help="finished search folders")
    ap.add_argument("--doc", metavar="FILE", help="also write the table into FILE between its markers")
    ap.add_argument("--marker", default="costs", help="FILE's markers: <!-- MARKER:start --> ... <!-- MARKER:end -->")
    args = ap.parse_args(argv)
    return exit_status(lambda: publish(report(args.searches), args.doc, args.marker))


if __name__ == "__main__":
    sys.exit(main())
