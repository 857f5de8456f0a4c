"""experiments/gpu_cifar100.py: its full-mode commands and sizing, and its dry run end to end on the CPU.

The dry run runs every stage (search with confirmation, retrain, report) at toy size, with a stand-in
`nvidia-smi` on PATH so that the GPU sampling and its summary run too.
"""

import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "gpu_cifar100.py"

spec = importlib.util.spec_from_file_location("gpu_cifar100", SCRIPT)
gpu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu)

FAKE_NVIDIA_SMI = """#!/bin/sh
case "$*" in *name,memory.total*) echo "Stand-in GPU, 1000 MiB"; exit 0;; esac
echo "timestamp, utilization.gpu [%], memory.used [MiB]"
while :; do date +"%Y/%m/%d %H:%M:%S.000, 42, 1234"; sleep 1; done
"""


def _run(*args, env=None, timeout=300):
    full_env = {**os.environ, **(env or {})}
    if "DRY_RUN" not in (env or {}):
        full_env.pop("DRY_RUN", None)
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def _flags(line: str) -> dict:
    words = line.split()
    return {w: (words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True)
            for i, w in enumerate(words) if w.startswith("--")}


def test_full_mode_runs_the_headline_command_and_a_wrn28_10_retrain(tmp_path):
    out = tmp_path / "out"
    r = _run(out, "--print-commands", env={"RETRAIN_EPOCHS": "30"})
    assert r.returncode == 0, r.stderr
    search, retrain, estimate = r.stdout.splitlines()
    assert search.startswith("autosoft search ") and retrain.startswith("autosoft train ")
    s = _flags(search)
    assert s["--dataset"] == "cifar100" and s["--budget"] == "200"
    assert s["--target-config"] == "experiments/configs/cifar100_gpu_target.json"
    assert (s["--gpus-per-trial"], s["--cpus-per-trial"], s["--max-concurrent"]) == ("0.125", "1", "8")
    assert (s["--confirm"], s["--confirm-seeds"], s["--confirm-fidelity"], s["--time-limit"]) == ("2", "2", "1", "7.5m")
    assert s["--out"] == str(out.resolve() / "search") and "--resume" not in s
    t = _flags(retrain)
    assert t["--model"] == "wrn28_10" and t["--epochs"] == "30"
    assert t["--config"] == "experiments/configs/cifar100_wrn28_10.json"
    assert t["--policy"] == str(out.resolve() / "search" / "policy.json")
    assert "estimate (not measured" in estimate
    assert not out.exists()  # printing runs nothing and writes nothing
    assert _flags(_run(out, "--print-commands").stdout.splitlines()[1])["--epochs"] == "200"


def test_committed_configs_and_the_sizing_arithmetic():
    from autosoft.search.tune_glue import trials_that_fit
    from autosoft.search.proxy import target_config
    from autosoft.train import TrainConfig

    target = target_config("cifar100", str(ROOT / gpu.TARGET))
    assert (target["model"], target["train_size"], target["val_size"]) == ("wrn40_2", None, 5000)
    retrain = TrainConfig.from_dict(json.loads((ROOT / gpu.RETRAIN).read_text()))
    retrain.validate()
    assert (retrain.model, retrain.epochs, retrain.batch_size, retrain.lr, retrain.schedule) == \
        ("wrn28_10", 200, 128, 0.1, "cosine")
    # The GPU share and the concurrency agree on one GPU and 16 cores (the lent machine).
    assert trials_that_fit({"CPU": 16, "GPU": 1}, gpu.FULL["cpus_per_trial"], gpu.FULL["gpus_per_trial"]) == \
        gpu.FULL["max_concurrent"]
    e = gpu.estimate()
    proxy = (e["proxy_epochs"], e["proxy_train_size"], e["proxy_batch_size"], e["proxy_val_size"])
    assert proxy == (3, 11250, 64, 5000)
    assert e["confirm_runs"] == 14 and e["total_s"] < 540  # leaves a tenth of the 10 minutes spare
    # The header states the same numbers the code computes.
    header = SCRIPT.read_text()
    for number in (f"~{e['trials_s']:.0f} s", f"~{e['confirm_s']:.0f} s", f"~{e['total_s']:.0f} s",
                   f"{e['trial_images']:,.0f} image-equivalents", f"~{e['trials_per_min']:.0f} trials/min"):
        assert number in header, number
    assert "not yet run on a GPU" in header


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    empty, foreign = tmp_path / "empty", tmp_path / "foreign"
    empty.mkdir()
    foreign.mkdir()
    (foreign / "notes.txt").write_text("someone's")
    for args, message in [
        ((tmp_path / "a", "--data-dir", empty), "CIFAR-100 not found under"),
        ((tmp_path / "a", "--retrain-epochs", "0"), "--retrain-epochs: expected an integer >= 1"),
        ((tmp_path / "a", "--bogus"), "unrecognized arguments: --bogus"),
        ((tmp_path / "a", "--resume"), "does not exist; drop --resume"),
        ((foreign, "--dry-run"), "was not made by this script"),
    ]:
        r = _run(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gpu_cifar100: error: ") and message in lines[0], r.stderr
        assert not (tmp_path / "a").exists()


def test_dry_run_runs_every_stage_on_the_cpu(real_cifar100, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text(FAKE_NVIDIA_SMI)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"AUTOSOFT_DATA": str(real_cifar100), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "DRY_RUN": "1"}
    out = tmp_path / "out"
    r = _run(out, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stdout + r.stderr

    policy = json.loads((out / "search" / "policy.json").read_text())
    assert policy["version"] == 1
    assert (out / "search" / "confirm.csv").exists()  # the confirmation stage ran
    final = json.loads((out / "retrain" / "final.json").read_text())
    assert 0 <= final["top1"] <= 1

    # The commands it ran are the dry-run form of the full-mode ones: the same flags, toy sizes.
    ran = [line.split("  ", 1)[1] for line in (out / "commands.txt").read_text().splitlines()]
    assert ran == [gpu.shown(gpu.search_command(out.resolve(), dry=True, resume=False, data_dir=None)),
                   gpu.shown(gpu.retrain_command(out.resolve(), dry=True, epochs=1, resume=False, data_dir=None))]
    s = _flags(ran[0])
    assert s["--dataset"] == "cifar100" and s["--budget"] == "6" and s["--gpus-per-trial"] == "0"
    assert (s["--confirm"], s["--confirm-seeds"]) == ("1", "1")
    assert _flags(ran[1])["--model"] == "proxy"  # the width-8 net in place of WRN-28-10

    text = (out / "gpu_report.txt").read_text()
    assert "GPU: Stand-in GPU, 1000 MiB; utilisation and memory sampled by nvidia-smi every 5 s" in text
    assert re.search(r"search: exit 0, \d+ s wall \(trials \d+ s, confirmation \d+ s\); trials 6/6 \(6 this start\); "
                     r"trial rate [\d.]+ trials/min", text), text
    assert "verdict: " in text
    assert re.search(r"retrain: exit 0, \d+ s wall, 1 epoch\(s\) asked, device cpu; epoch time: first [\d.]+ s", text)
    assert "test top-1 " in text
    assert re.search(r"GPU: utilisation mean 42% max 42%, memory max 1,234 MiB \(\d+ samples", text), text
    report = json.loads((out / "gpu_report.json").read_text())
    assert report["starts"][0]["search"]["trials_per_min"] > 0
    assert report["starts"][0]["retrain"]["epochs_done"] == 1

    # Nothing existing is overwritten: the same OUT is refused without --resume ...
    r = _run(out, env=env)
    assert r.returncode == 2 and "already holds a run; pass --resume" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # ... and with it, the finished stages are skipped.
    r = _run(out, "--resume", env=env)
    assert r.returncode == 0, r.stderr
    assert "skipped (finished before): search, retrain" in (out / "gpu_report.txt").read_text()
    # The sampler was stopped: no stand-in nvidia-smi is left running.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(fake) not in ps
