#!/usr/bin/env python
"""The headline on one GPU: `autosoft search --dataset cifar100 --budget 200`, then the exported
policy retrained with WRN-28-10, with the evidence (stage wall times, trial rate, retrain epoch
time, GPU utilisation) in OUT/gpu_report.txt.

STATUS: prepared, not yet run on a GPU. Every number below is an estimate from arithmetic, not a
measurement; the first run on a GPU replaces it with OUT/gpu_report.txt. The dry run (below) runs
the same stages on a CPU in CI (tests/test_experiments.py).

Stages
  1. search: `autosoft search --dataset cifar100 --budget 200` aimed at the committed GPU target
     experiments/configs/cifar100_gpu_target.json (WRN-40-2, the full train split less 5,000
     validation images, 3 epochs, one-cycle, batch 256), from which the proxy is derived; 8
     trials share the GPU (--gpus-per-trial 0.125 --cpus-per-trial 1 --max-concurrent 8); the
     confirmation stage retrains the 2 best searched policies and the 5 baselines at the
     target itself (--confirm 2 --confirm-seeds 2 --confirm-fidelity 1); --time-limit 7.5m
     stops starting trials (safety net; --resume continues). Output: OUT/search/.
  2. retrain: `autosoft train --model wrn28_10 --policy OUT/search/policy.json` with the
     AutoAugment-family schedule (experiments/configs/cifar100_wrn28_10.json: 200 epochs, SGD
     0.9 Nesterov, lr 0.1, cosine, batch 128, weight decay 5e-4; 1,000 train images held out
     for temperature scaling). --retrain-epochs N (or RETRAIN_EPOCHS=N) sets the epochs. Not
     part of the 10-minute budget. Output: OUT/retrain/.
  3. report: per-stage wall time, trials/min, retrain epoch times, test top-1 / ECE, and the
     GPU utilisation and memory sampled by `nvidia-smi --query-gpu=timestamp,utilization.gpu,
     memory.used --format=csv,nounits -l 5` in the background (OUT/gpu_util.csv) where
     nvidia-smi exists: OUT/gpu_report.txt (and .json). OUT/commands.txt has the commands run.

Sizing (search + confirmation under 10 minutes on one H200; `--print-commands` prints this
arithmetic from the committed configs and autosoft's proxy rules, and the test checks it):
  - The derived proxy: 3 epochs of 11,250 train images at batch 64 (the target's 525 optimizer
    steps), scored once on 5,000 validation images: 33,750 + 5,000/3 (a forward pass costs about
    a third of a training step) = 35,417 image-equivalents per trial.
  - Assumed throughput: 2,500 img/s per trial with 8 trials on the GPU, i.e. 20,000 img/s
    together. WRN-40-2 costs about 2 GFLOP per trained image, so that is ~40 TFLOP/s, ~4% of the
    H200's bf16 peak: its 32-128-channel convolutions at batch 64 are small kernels, launch- and
    memory-bound, and 8 processes without MPS time-share the GPU rather than overlap.
    The trainer keeps the data on the GPU and augments there (no DataLoader); bf16 autocast.
  - Trials: 35,417 / 2,500 = 14.2 s + ~1 s per trial (actor reuse, model build, cuDNN warm-up)
    = 15.2 s; 200 trials in 25 waves of 8: ~379 s (trial rate ~32 trials/min).
  - Confirmation: (2 searched + 5 baselines) x 2 seeds = 14 runs of 3 epochs x 45,000 images
    + 5,000 validation = 136,667 each: 8 at once at 2,500 img/s (56 s), then 6 sharing the
    20,000 img/s (~3,300 img/s each, under the ~8,000 img/s of one process alone at batch 256;
    42 s): ~98 s.
  - Start-up: Ray, reading the 50,000 train images, 8 workers importing torch and opening
    CUDA contexts, the confirmation workers, plots: ~40 s.
  - Total ~517 s (8.6 min). If the aggregate throughput is below ~17,000 img/s, the 7.5-minute
    time limit stops the trials first: the search then ends unconfirmed (exit 130), the report
    says so, and rerunning with --resume finishes it.
  - The retrain, for scale: WRN-28-10 costs ~31 GFLOP per trained image (~1.5 PFLOP per
    49,000-image epoch); at an assumed 150 TFLOP/s (eager PyTorch, bf16, channels_last) about
    10 s an epoch, ~35 min for 200 epochs.
  A 3-epoch target is what a budget of 200 trials in 10 minutes affords; a policy tuned for it
  is tuned for short training. The search time scales with the target's epochs.

Usage (from anywhere; AUTOSOFT_DATA must already hold CIFAR-100 -- on this project's machines
`export AUTOSOFT_DATA=$(python ../shared/data/build.py)`; nothing is downloaded):
  python experiments/gpu_cifar100.py OUT                     # search, then a 200-epoch retrain
  python experiments/gpu_cifar100.py OUT --stage search      # the 10-minute part only
  python experiments/gpu_cifar100.py OUT --resume            # continue: a finished stage is skipped
  python experiments/gpu_cifar100.py OUT --resume --stage retrain --retrain-epochs 10
  python experiments/gpu_cifar100.py OUT --print-commands    # the commands and the estimate; runs nothing
  python experiments/gpu_cifar100.py OUT --dry-run           # (or DRY_RUN=1) tiny, on the CPU, ~1 min
An existing OUT is refused unless --resume (one left by a start that completed no stage is
taken over). Bad input: one line, exit 2. A stage that fails: its exit status, its log in OUT.

The dry run: the same stages and flags at toy size on the CPU (74 s on this project's 2-core
machine beside another job; ~26 s of CPU time) -- a 6-trial
search (the 5 baselines and one searched trial) aimed at a width-8 net trained 4 epochs on 1,000
images (its derived proxy: the same 1,000 images at batch 16, 5,000 validation images),
confirmation of 1 searched policy x 1 seed (and the baselines), a 1-epoch retrain of the width-8
net on 200 images in place of WRN-28-10.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # autosoft from this checkout, as the stages get it (PYTHONPATH)
from autosoft.search.settings import BASELINES_SOFT  # noqa: E402  (run as trials, confirmed beside the searched)

TARGET = "experiments/configs/cifar100_gpu_target.json"
RETRAIN = "experiments/configs/cifar100_wrn28_10.json"
PROG = "gpu_cifar100"

# Full mode: the search's resources and confirmation, sized by the arithmetic in the header.
FULL = {"budget": 200, "gpus_per_trial": 0.125, "cpus_per_trial": 1, "max_concurrent": 8,
        "confirm": 2, "confirm_seeds": 2, "confirm_fidelity": 1, "time_limit": "7.5m"}

BASELINES = len(BASELINES_SOFT)
# The assumptions of the estimate (header): img/s per trial with 8 sharing the GPU, img/s of one
# run alone, a validation image's cost in training images, per-trial and start-up overheads.
ASSUMED = {"trial_img_s": 2500, "solo_img_s": 8000, "val_cost": 1 / 3, "trial_overhead_s": 1.0,
           "startup_s": 40.0, "retrain_tflops": 150.0, "wrn28_10_gflop_per_image": 31.5}

# Dry run: the same stages at toy size on the CPU.
DRY = {"budget": BASELINES + 1, "gpus_per_trial": 0, "cpus_per_trial": 1, "max_concurrent": 2,
       "confirm": 1, "confirm_seeds": 1, "confirm_fidelity": 1, "time_limit": "5m"}
# A target small enough for seconds a run, yet one whose derived proxy (4 epochs of the 1,000
# images at batch 16, 5,000 validation images) scores clearly above chance, so that the chance
# check lets the confirmation stage run (a width-8 net reaches ~3-4% top-1 vs 1% chance).
DRY_TARGET = {"dataset": "cifar100", "model": "proxy", "model_kwargs": {"width": 8}, "epochs": 4,
              "batch_size": 64, "lr": 0.2, "weight_decay": 0.0005, "schedule": "onecycle", "warmup_epochs": 0.5,
              "train_size": 1000, "val_size": 2000, "threads": 1, "device": "cpu"}
DRY_RETRAIN_FLAGS = ["--model", "proxy", "--width", "8", "--train-size", "200", "--val-size", "100",
                     "--batch-size", "64", "--device", "cpu", "--threads", "1"]

SAMPLE_EVERY_S = 5
COUNTED = ("complete", "stopped", "failed")  # trial states that count towards the budget
OURS = ("stages.json", "commands.txt", "search.log", "retrain.log", "gpu_util.csv", "gpu_report.txt",
        "gpu_report.json", "dry_target.json")


class BadInput(Exception):
    pass


# ---- the commands ------------------------------------------------------------------------
def search_command(out: Path, *, dry: bool, resume: bool, data_dir: str | None) -> list[str]:
    s = DRY if dry else FULL
    target = str(out / "dry_target.json") if dry else TARGET
    cmd = ["search", "--dataset", "cifar100", "--budget", str(s["budget"]), "--target-config", target,
           "--gpus-per-trial", f"{s['gpus_per_trial']:g}", "--cpus-per-trial", f"{s['cpus_per_trial']:g}",
           "--max-concurrent", str(s["max_concurrent"]), "--confirm", str(s["confirm"]),
           "--confirm-seeds", str(s["confirm_seeds"]), "--confirm-fidelity", f"{s['confirm_fidelity']:g}",
           "--time-limit", s["time_limit"], "--seed", "0", "--out", str(out / "search")]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if resume:
        cmd.append("--resume")
    return cmd


def retrain_command(out: Path, *, dry: bool, epochs: int, resume: bool, data_dir: str | None) -> list[str]:
    cmd = ["train", "--config", RETRAIN, "--model", "wrn28_10", "--epochs", str(epochs),
           "--policy", str(out / "search" / "policy.json"), "--out", str(out / "retrain"), "--quiet"]
    if dry:
        cmd += DRY_RETRAIN_FLAGS  # later flags win: the width-8 net on the CPU (1 epoch by default)
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if resume:
        cmd.append("--resume")
    return cmd


def shown(cmd: list[str]) -> str:
    return shlex.join(["autosoft", *cmd])


# ---- the estimate ------------------------------------------------------------------------
def estimate(target: dict | None = None, n_train: int = 50_000) -> dict:
    """The header's arithmetic, from the committed target and autosoft's own proxy rules."""
    from autosoft.search.proxy import confirmation_config, derive_proxy

    target = target or json.loads((ROOT / TARGET).read_text())
    proxy, _ = derive_proxy(target, n_train)
    a, s = ASSUMED, FULL
    trial_images = proxy["epochs"] * proxy["train_size"] + proxy["val_size"] * a["val_cost"]
    trial_s = trial_images / a["trial_img_s"] + a["trial_overhead_s"]
    waves = math.ceil(s["budget"] / s["max_concurrent"])
    trials_s = waves * trial_s
    confirm = confirmation_config(target, proxy, s["confirm_fidelity"])
    runs = (s["confirm"] + BASELINES) * s["confirm_seeds"]
    run_images = confirm["epochs"] * (n_train - confirm["val_size"]) + confirm["val_size"] * a["val_cost"]
    full_waves, last = divmod(runs, s["max_concurrent"])
    together = a["trial_img_s"] * s["max_concurrent"]
    confirm_s = full_waves * (run_images / a["trial_img_s"] + a["trial_overhead_s"])
    if last:
        confirm_s += run_images / min(together / last, a["solo_img_s"]) + a["trial_overhead_s"]
    total = a["startup_s"] + trials_s + confirm_s
    epoch_s = (n_train - 1000) * a["wrn28_10_gflop_per_image"] / (a["retrain_tflops"] * 1000)
    return {"proxy_epochs": proxy["epochs"], "proxy_train_size": proxy["train_size"],
            "proxy_batch_size": proxy["batch_size"], "proxy_val_size": proxy["val_size"],
            "trial_images": trial_images, "trial_s": trial_s, "waves": waves, "trials_s": trials_s,
            "trials_per_min": s["budget"] / trials_s * 60, "confirm_runs": runs, "confirm_epochs": confirm["epochs"],
            "confirm_run_images": run_images, "confirm_s": confirm_s, "startup_s": a["startup_s"],
            "total_s": total, "retrain_epoch_s": epoch_s, "assumed": dict(a)}


def estimate_text(e: dict) -> str:
    a = e["assumed"]
    return (f"estimate (not measured; assumptions in the script header): a trial trains {e['proxy_epochs']} epochs "
            f"x {e['proxy_train_size']:,} images (batch {e['proxy_batch_size']}) and validates "
            f"{e['proxy_val_size']:,}: {e['trial_images']:,.0f} image-equivalents; at {a['trial_img_s']:,} img/s "
            f"per trial ({FULL['max_concurrent']} sharing the GPU) {e['trial_s']:.1f} s; {FULL['budget']} trials "
            f"in {e['waves']} waves: {e['trials_s']:.0f} s ({e['trials_per_min']:.0f} trials/min); confirmation "
            f"{e['confirm_runs']} runs of {e['confirm_epochs']} epochs ({e['confirm_run_images']:,.0f} images each): "
            f"{e['confirm_s']:.0f} s; start-up {e['startup_s']:.0f} s; search total {e['total_s']:.0f} s "
            f"({e['total_s'] / 60:.1f} min, budget 600 s). WRN-28-10 retrain: ~{e['retrain_epoch_s']:.0f} s "
            f"an epoch at {a['retrain_tflops']:.0f} TFLOP/s.")


# ---- GPU sampling ------------------------------------------------------------------------
class Sampler:
    """nvidia-smi in the background, one line every SAMPLE_EVERY_S seconds, appended to a CSV."""

    QUERY = "timestamp,utilization.gpu,memory.used"

    def __init__(self, path: Path):
        self.path, self.proc, self.file = path, None, None
        self.exe = shutil.which("nvidia-smi")

    def __enter__(self):
        if self.exe:
            self.file = open(self.path, "a")
            self.proc = subprocess.Popen([self.exe, f"--query-gpu={self.QUERY}", "--format=csv,nounits",
                                          "-l", str(SAMPLE_EVERY_S)], stdout=self.file,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only nvidia-smi
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.file.close()


def gpu_name() -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        r = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return "; ".join(line.strip() for line in r.stdout.splitlines() if line.strip()) or None


def read_samples(path: Path) -> list[tuple[float, float, float]]:
    """(unix time, utilisation %, memory MiB) per sample line; header and odd lines skipped."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        try:
            t = dt.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            util = float(parts[1].rstrip(" %"))
            mem = float(parts[2].split()[0])
        except ValueError:
            continue  # the header, or "[N/A]"
        out.append((t, util, mem))
    return out


def gpu_summary(samples, start: float, end: float) -> dict | None:
    inside = [(u, m) for t, u, m in samples if start - 1 <= t <= end + 1]
    if not inside:
        return None
    utils, mems = [u for u, _ in inside], [m for _, m in inside]
    return {"samples": len(inside), "util_mean": statistics.fmean(utils), "util_max": max(utils),
            "mem_max_mib": max(mems)}


# ---- running a stage ---------------------------------------------------------------------
INTERRUPT_GRACE_S = 10


def run_stage(cmd: list[str], log: Path) -> tuple[int, float, float, list[str], bool]:
    """Run `autosoft CMD` from the repository root, its output to the terminal and to `log`;
    returns (exit status, start, end, output lines, interrupted).

    On Ctrl-C (or a SIGTERM sent to this script) the stage is let finish its own way: a Ctrl-C
    at the terminal reaches it too, and it stops at its own pace (Ray shut down, checkpoint
    kept); one that did not reach it is passed on after INTERRUPT_GRACE_S. Its output is read
    until it exits, so that it never blocks on a full pipe.
    """
    import threading

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"  # its lines as they come, in the log and on the terminal
    argv = [sys.executable, "-m", "autosoft.cli", *cmd]
    lines: list[str] = []
    interrupted, timer = False, None
    start = time.time()
    with open(log, "a") as f:
        f.write(f"$ {shown(cmd)}\n")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)

        def pass_on():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)

        while True:
            try:
                for line in proc.stdout:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    f.write(line)
                    lines.append(line.rstrip("\n"))
                break
            except KeyboardInterrupt:
                if not interrupted:
                    interrupted = True
                    timer = threading.Timer(INTERRUPT_GRACE_S, pass_on)
                    timer.daemon = True
                    timer.start()
                else:  # a second one: pass it on now
                    pass_on()
        rc = proc.wait()
        if timer is not None:
            timer.cancel()
    return rc, start, time.time(), lines, interrupted


def _terminate(signum, frame):
    raise KeyboardInterrupt


def count_trials(search: Path) -> int:
    import csv
    path = search / "trials.csv"
    if not path.exists():
        return 0
    with open(path, newline="") as f:
        return sum(row.get("state") in COUNTED for row in csv.DictReader(f))


def last_wall_times(search: Path, started: float) -> dict:
    """The search's own stage times (wall_times.jsonl) of the start that began after `started`."""
    path = search / "wall_times.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return {}
    row = rows[-1]
    when = dt.datetime.fromisoformat(row["started"]).timestamp()
    # "running": that start was killed before it ended (its times are then up to 30 s short);
    # "host" and "pid" name the process of that start
    return ({k: v for k, v in row.items() if k not in ("started", "running", "host", "pid")}
            if when >= int(started) - 1 else {})


def search_stage(out: Path, args, starts: list) -> int:
    resume = (out / "search" / "search.json").exists()
    cmd = search_command(out, dry=args.dry_run, resume=resume, data_dir=args.data_dir)
    log_command(out, cmd)
    before = count_trials(out / "search")
    rc, start, end, lines, interrupted = run_stage(cmd, out / "search.log")
    after = count_trials(out / "search")
    inner = last_wall_times(out / "search", start)
    rec = {"rc": rc, "start": start, "end": end, "wall_s": end - start, "trials_before": before,
           "trials_after": after, "budget": (DRY if args.dry_run else FULL)["budget"],
           **{f"{k}_s": v for k, v in inner.items()}}
    trial_s = inner.get("trials")
    if trial_s and after > before:
        rec["trials_per_min"] = (after - before) / trial_s * 60
    # The search's closing lines, as it printed them (autosoft/cli.py)
    for key, prefix, keep in (("verdict", "verdict: ", False), ("warning", "warning: ", False),
                              ("rank_correlation", "proxy vs confirmation rank correlation", True)):
        found = [line for line in lines if line.startswith(prefix)]
        rec[key] = (found[-1] if keep else found[-1][len(prefix):]) if found else None
    rec["interrupted"] = interrupted
    starts[-1]["search"] = rec
    return rc


def retrain_stage(out: Path, args, starts: list) -> int:
    run = out / "retrain"
    resume = (run / "config.json").exists()
    cmd = retrain_command(out, dry=args.dry_run, epochs=args.retrain_epochs, resume=resume, data_dir=args.data_dir)
    log_command(out, cmd)
    rc, start, end, _, interrupted = run_stage(cmd, out / "retrain.log")
    rec = {"rc": rc, "start": start, "end": end, "wall_s": end - start, "epochs_asked": args.retrain_epochs}
    rows = []
    if (run / "metrics.jsonl").exists():
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    times = [r["epoch_time_s"] for r in rows if "epoch_time_s" in r]
    if times:
        rec.update(epochs_done=len(times), epoch_first_s=times[0],
                   epoch_median_s=statistics.median(times[1:] or times), epoch_mean_s=statistics.fmean(times))
    if (run / "final.json").exists():
        final = json.loads((run / "final.json").read_text())
        rec.update({k: final.get(k) for k in ("top1", "ece", "ece_ts", "nll", "train_time_s")})
    environment = run / "config.json"
    if environment.exists():
        rec["device"] = json.loads(environment.read_text()).get("environment", {}).get("device")
    rec["interrupted"] = interrupted
    starts[-1]["retrain"] = rec
    return rc


def log_command(out: Path, cmd: list[str]) -> None:
    with open(out / "commands.txt", "a") as f:
        f.write(f"{dt.datetime.now().isoformat(timespec='seconds')}  {shown(cmd)}\n")


# ---- the report --------------------------------------------------------------------------
def report(out: Path, state: dict) -> str:
    samples = read_samples(out / "gpu_util.csv")
    dry = state["mode"] == "dry-run"
    lines = [f"autosoft on a GPU: CIFAR-100 search (budget {(DRY if dry else FULL)['budget']}) + "
             f"{'width-8 proxy net (dry run)' if dry else 'WRN-28-10'} retrain -- {state['mode']}",
             f"folder: {out}", f"GPU: {state.get('gpu') or 'none seen (nvidia-smi not found)'}; "
             f"utilisation and memory sampled by nvidia-smi every {SAMPLE_EVERY_S} s"]
    if not dry:
        lines.append(estimate_text(estimate()))
    for i, start in enumerate(state["starts"], 1):
        lines.append(f"start {i}: {start['started']}")
        s = start.get("search")
        if s:
            inner = ", ".join(f"{k[:-2]} {s[k]:.0f} s" for k in ("trials_s", "confirmation_s") if s.get(k) is not None)
            rate = f"; trial rate {s['trials_per_min']:.1f} trials/min" if s.get("trials_per_min") else ""
            lines.append(f"  search: exit {s['rc']}{' (interrupted)' if s.get('interrupted') else ''}, {s['wall_s']:.0f} s wall ({inner or 'no stage timed'}); "
                         f"trials {s['trials_after']}/{s['budget']} ({s['trials_after'] - s['trials_before']} "
                         f"this start){rate}")
            for key in ("verdict", "warning"):
                if s.get(key):
                    lines.append(f"    {key}: {s[key]}")
            if s.get("rank_correlation"):
                lines.append(f"    {s['rank_correlation']}")
            if s["rc"] == 130 and not s.get("interrupted"):
                lines.append("    the time limit stopped the trials before the budget: unconfirmed; "
                             "rerun with --resume to finish")
            g = gpu_summary(samples, s["start"], s["end"])
            lines.append("    GPU: " + (f"utilisation mean {g['util_mean']:.0f}% max {g['util_max']:.0f}%, memory max "
                                        f"{g['mem_max_mib']:,.0f} MiB ({g['samples']} samples)"
                                        if g else "no samples"))
        r = start.get("retrain")
        if r:
            epochs = (f"; epoch time: first {r['epoch_first_s']:.1f} s, median {r['epoch_median_s']:.1f} s, "
                      f"mean {r['epoch_mean_s']:.1f} s over {r['epochs_done']} epochs" if r.get("epochs_done") else "")
            lines.append(f"  retrain: exit {r['rc']}{' (interrupted)' if r.get('interrupted') else ''}, {r['wall_s']:.0f} s wall, {r['epochs_asked']} epoch(s) asked, "
                         f"device {r.get('device')}{epochs}")
            if r.get("top1") is not None:
                ts = f", ECE after temperature scaling {100 * r['ece_ts']:.2f}%" if r.get("ece_ts") is not None else ""
                lines.append(f"    test top-1 {100 * r['top1']:.2f}%, ECE {100 * r['ece']:.2f}%{ts}, "
                             f"training {r['train_time_s']:.0f} s")
            g = gpu_summary(samples, r["start"], r["end"])
            lines.append("    GPU: " + (f"utilisation mean {g['util_mean']:.0f}% max {g['util_max']:.0f}%, memory max "
                                        f"{g['mem_max_mib']:,.0f} MiB ({g['samples']} samples)" if g else "no samples"))
        if start.get("skipped"):
            lines.append(f"  skipped (finished before): {', '.join(start['skipped'])}")
    policy = out / "search" / "policy.json"
    lines.append(f"policy: {policy if policy.exists() else 'none yet'}")
    lines.append(f"commands: {out / 'commands.txt'}; outputs: {out / 'search'}, {out / 'retrain'}; "
                 f"GPU samples: {out / 'gpu_util.csv' if samples else 'none'}")
    return "\n".join(lines) + "\n"


def write_state(out: Path, state: dict) -> None:
    from autosoft.files import atomic_write_json, atomic_write_text
    atomic_write_json(out / "stages.json", state)
    atomic_write_text(out / "gpu_report.txt", report(out, state))
    atomic_write_json(out / "gpu_report.json", state)


# ---- checks and main ---------------------------------------------------------------------
def parse_args(argv):
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise BadInput(message)

    p = Parser(prog=PROG, description="Budget-200 CIFAR-100 search on one GPU, then a WRN-28-10 retrain "
                                      "(see the header of experiments/gpu_cifar100.py).")
    p.add_argument("out", help="output folder (refused if it exists, unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue in OUT: finished stages are skipped")
    p.add_argument("--stage", choices=("all", "search", "retrain"), default="all")
    p.add_argument("--retrain-epochs", type=int, default=None,
                   help="WRN-28-10 epochs (default $RETRAIN_EPOCHS, else 200; 1 in a dry run)")
    p.add_argument("--dry-run", action="store_true", help="tiny, on the CPU (also DRY_RUN=1)")
    p.add_argument("--print-commands", action="store_true", help="print the commands and the estimate; run nothing")
    p.add_argument("--data-dir", default=None, help="data root (default $AUTOSOFT_DATA)")
    args = p.parse_args(argv)
    args.dry_run = args.dry_run or os.environ.get("DRY_RUN", "") not in ("", "0")
    if args.retrain_epochs is None:
        env = os.environ.get("RETRAIN_EPOCHS")
        try:
            args.retrain_epochs = int(env) if env else (1 if args.dry_run else 200)
        except ValueError:
            raise BadInput(f"RETRAIN_EPOCHS={env!r}: expected a whole number of epochs") from None
    if args.retrain_epochs < 1:
        raise BadInput(f"--retrain-epochs: expected an integer >= 1, got {args.retrain_epochs}")
    return args


def check_out(out: Path, args) -> dict | None:
    """The saved state to continue, None for a fresh start; BadInput if OUT cannot be used."""
    mode = "dry-run" if args.dry_run else "full"
    if not out.exists():
        if args.resume:
            raise BadInput(f"--resume: {out} does not exist; drop --resume to start")
        return None
    if not out.is_dir():
        raise BadInput(f"{out} exists and is not a folder; choose another OUT")
    if not any(out.iterdir()) and not args.resume:
        return None  # an empty folder
    try:
        state = json.loads((out / "stages.json").read_text())
    except (OSError, json.JSONDecodeError):
        state = None
    if not isinstance(state, dict) or "starts" not in state:
        raise BadInput(f"{out} exists and was not made by this script; choose another OUT")
    produced = (out / "search" / "search.json").exists() or (out / "retrain" / "config.json").exists()
    if not args.resume and produced:
        raise BadInput(f"{out} already holds a run; pass --resume to continue it, or choose another OUT")
    if state.get("mode") != mode and produced:
        raise BadInput(f"{out} holds a {state.get('mode')} run; this is a {mode} one: choose another OUT")
    return state if produced else None  # a start that produced nothing is taken over


def check_data(data_dir: str | None) -> None:
    from autosoft.data import data_root
    root = data_root(data_dir)
    if not (root / "cifar-100-python" / "train").is_file():
        raise BadInput(f"CIFAR-100 not found under {root} (cifar-100-python/train); set AUTOSOFT_DATA or "
                       "--data-dir (on this project's machines: export AUTOSOFT_DATA=$(python ../shared/data/build.py))")


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        out = Path(args.out).expanduser().resolve()
        if args.print_commands:
            print(shown(search_command(out, dry=args.dry_run, resume=args.resume, data_dir=args.data_dir)))
            print(shown(retrain_command(out, dry=args.dry_run, epochs=args.retrain_epochs, resume=args.resume,
                                        data_dir=args.data_dir)))
            if not args.dry_run:
                print(estimate_text(estimate()))
            return 0
        state = check_out(out, args)
        check_data(args.data_dir)
        if args.stage == "retrain" and not (out / "search" / "policy.json").exists():
            raise BadInput(f"--stage retrain: {out / 'search' / 'policy.json'} does not exist; run the search first")
    except BadInput as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2

    if state is None:
        if out.exists():  # left by a start that produced nothing: ours only, replaced
            for name in OURS:
                (out / name).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        state = {"mode": "dry-run" if args.dry_run else "full", "starts": [], "done": []}
        if args.dry_run:
            (out / "dry_target.json").write_text(json.dumps(DRY_TARGET, indent=2) + "\n")
    state["gpu"] = gpu_name() or state.get("gpu")
    state["starts"].append({"started": dt.datetime.now().isoformat(timespec="seconds"), "skipped": []})
    write_state(out, state)

    rc = 0
    stages = ["search", "retrain"] if args.stage == "all" else [args.stage]
    signal.signal(signal.SIGTERM, _terminate)  # the sampler is stopped and the report written
    with Sampler(out / "gpu_util.csv"):
        try:
            for stage in stages:
                if stage == "search" and stage in state["done"] or \
                        stage == "retrain" and (out / "retrain" / "final.json").exists():
                    state["starts"][-1]["skipped"].append(stage)
                    continue
                rc = (search_stage if stage == "search" else retrain_stage)(out, args, state["starts"])
                if rc == 0:
                    state["done"].append(stage)
                write_state(out, state)
                if state["starts"][-1][stage]["interrupted"]:
                    raise KeyboardInterrupt
                if rc != 0:
                    what = "stopped at the time limit (rerun with --resume)" if rc == 130 else f"failed (exit {rc})"
                    print(f"{PROG}: the {stage} stage {what}; its output: {out / (stage + '.log')}", file=sys.stderr)
                    break
        except KeyboardInterrupt:
            rc = 130
            print(f"{PROG}: interrupted; rerun with --resume to continue", file=sys.stderr)
    write_state(out, state)
    print((out / "gpu_report.txt").read_text(), end="")
    return rc


if __name__ == "__main__":
    sys.exit(main())
