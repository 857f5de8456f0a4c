"""experiments/fidelity_rungs.py on a hand-made finished search over real CIFAR-10 images."""

import csv
import json
import sys
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from autosoft.policy import load_policy
from autosoft.search.proxy import PROXY_COST, proxy_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))  # spawned pool workers inherit it and import the script by name
import fidelity_rungs as rungs  # noqa: E402

POLICIES = ("baseline", "autoaugment-cifar10", "trivialaugment")
CONFIRMATION = {"baseline": 0.41, "autoaugment-cifar10": 0.45, "trivialaugment": 0.43}


def _finished_search(folder: Path, data_root: Path) -> dict:
    """search.json, confirm.csv and confirm/NAME-s0/policy.json as a finished search leaves them."""
    target = {"dataset": "cifar10", "model": "proxy", "model_kwargs": {"width": 8}, "epochs": 6, "batch_size": 16,
              "lr": 0.05, "warmup_epochs": 1, "data_dir": str(data_root), "threads": 1}
    proxy, _ = proxy_config("cifar10", "auto", target=target, n_train=1000, seed=0, data_dir=str(data_root),
                            threads=1)
    settings = {"study_name": "autosoft-test", "objectives": ["val_acc"], "seed": 0, "target": target,
                "proxy": proxy, "confirmation": {"config": {**target, "val_size": proxy["val_size"]}}}
    folder.mkdir()
    (folder / "search.json").write_text(json.dumps(settings))
    with (folder / "confirm.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "kind", "proxy_score", "seeds", "val_acc_mean", "val_acc_std", "val_ece_mean", "winner",
                    "race", "scores"])
        for name in POLICIES:
            w.writerow([name, "baseline", "", 2, CONFIRMATION[name], 0.01, 0.1, name == "autoaugment-cifar10", "", ""])
            (folder / "confirm" / f"{name}-s0").mkdir(parents=True)
            load_policy(name).save(folder / "confirm" / f"{name}-s0" / "policy.json")
    return settings


def test_rungs_train_each_share_score_against_confirmation_and_resume(small_cifar10, tmp_path, capsys):
    search, out = tmp_path / "search", tmp_path / "rungs"
    settings = _finished_search(search, small_cifar10)
    # The 1/4 rung is the proxy the search's trials ran at (its split fixed at the search's seed).
    assert rungs.rung_config(settings, PROXY_COST, 1000).to_dict() == {**settings["proxy"], "split_seed": 0}

    args = [str(search), "--shares", "0.5", "1", "--seeds", "0", "--workers", "2", "--out", str(out)]
    assert rungs.main(args) == 0
    for share, images in (("0.5", 500), ("1", 900)):  # derive_proxy: a share of the 1,000, 100 held out
        for name in POLICIES:
            config = json.loads((out / f"share-{share}" / f"{name}-s0" / "config.json").read_text())["train"]
            assert (config["train_size"], config["val_size"], config["split_seed"]) == (images, 100, 0)
            assert config["eval_test"] is False and config["epochs"] == 6

    rows = list(csv.DictReader((out / "rungs.csv").open()))
    assert len(rows) == 6
    text = (out / "rungs.md").read_text()
    for share in ("0.5", "1"):
        scores = {r["policy"]: float(r["val_acc"]) for r in rows if float(r["share"]) == float(share)}
        rho = spearmanr([scores[n] for n in POLICIES], [CONFIRMATION[n] for n in POLICIES]).statistic
        order = sorted(POLICIES, key=lambda n: -scores[n])
        rank = order.index("autoaugment-cifar10") + 1
        line = next(l for l in text.splitlines() if l.startswith(f"| {share} |"))
        assert f"| {rho:.2f} | {order[0]} | {rank} |" in line

    # A rerun trains nothing and leaves every run as it was.
    finals = {p: p.read_bytes() for p in out.glob("share-*/*/final.json")}
    capsys.readouterr()
    assert rungs.main(args) == 0
    assert "6 of 6 runs finished before; 0 to train" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in out.glob("share-*/*/final.json")} == finals


@pytest.mark.parametrize("case", ["no-confirm-csv", "bad-share", "not-a-search"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(small_cifar10, tmp_path, capsys, case):
    search, out = tmp_path / "search", tmp_path / "rungs"
    _finished_search(search, small_cifar10)
    args = [str(search), "--out", str(out)]
    if case == "no-confirm-csv":
        (search / "confirm.csv").unlink()
    elif case == "bad-share":
        args += ["--shares", "0.1", "1.5"]
    else:
        args[0] = str(tmp_path)
    assert rungs.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fidelity_rungs: ") and "\n" not in err
    assert not out.exists()
