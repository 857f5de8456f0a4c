"""The proxy derived from the target, the confirmation config and the chance check: known answers, no Ray."""

import json

import pytest
import torch

from autosoft.errors import AutosoftError
from autosoft.search.proxy import (MIN_STEPS, chance_note, confirmation_config, derive_proxy, proxy_config,
                                   target_config)
from autosoft.search.settings import confirmation_plan

W32 = {"epochs": 40, "batch_size": 256, "lr": 0.2, "warmup_epochs": 2, "train_size": 5000, "val_size": 1000,
       "model": "proxy", "model_kwargs": {"width": 32}, "weak_aug_epochs": 0}


def test_table_regime_keeps_model_epochs_and_steps_and_cuts_the_images():
    proxy, notes = derive_proxy(W32, n_train=50000)
    assert proxy["model_kwargs"] == {"width": 32} and proxy["epochs"] == 40 and proxy["train_size"] == 1250
    # a quarter of the images, each seen 40 times, in about the target's 760 steps: batch 256 / 4, lr / 4
    assert proxy["batch_size"] == 64 and proxy["lr"] == pytest.approx(0.05)
    assert proxy["val_size"] == 5000 and proxy["eval_test"] is False
    assert proxy["warmup_epochs"] * (1250 // 64) == pytest.approx(38)  # the target's 38 warm-up steps (2 x 19)
    assert notes == ["train subset of 1250 images at the target's 40 epochs, so that a trial costs 0.25 of the target",
                     "batch 256 -> 64: about the target's 760 optimizer steps (lr scaled alike)"]


def test_whole_train_split_target_keeps_its_epochs_on_a_quarter_of_the_images():
    target = {**W32, "epochs": 10, "train_size": None, "val_size": 0}
    proxy, notes = derive_proxy(target, n_train=50000)
    # a quarter of the target's 50,000 images (from the 45,000 not held out), for its 10 epochs
    assert proxy["epochs"] == 10 and proxy["train_size"] == 12500 and proxy["val_size"] == 5000
    assert proxy["batch_size"] == 64  # 10 x 12,500 / 1,950 target steps = 64.1
    assert notes[0].startswith("train subset of 12500 images at the target's 10 epochs")


def test_small_data_set_gets_smaller_batches_and_enough_steps():
    target = {**W32, "epochs": 10, "train_size": None, "val_size": 0}
    proxy, notes = derive_proxy(target, n_train=1442)
    assert proxy["val_size"] == 144 and proxy["train_size"] == 1298
    assert proxy["batch_size"] == 64 and proxy["lr"] == pytest.approx(0.05)
    steps = proxy["epochs"] * -(-proxy["train_size"] // proxy["batch_size"])
    assert steps >= MIN_STEPS and proxy["epochs"] == 10  # 10 x 21 = 210 steps; the target itself has 50
    assert "at least 150 optimizer steps" in notes[0] and notes[1].startswith("batch 256 -> 64")
    with pytest.raises(AutosoftError, match="too few to hold out 100"):
        derive_proxy(target, n_train=150)


def test_target_config_from_defaults_file_or_dict(tmp_path):
    assert target_config("cifar100")["dataset"] == "cifar100" and target_config("cifar100")["epochs"] == 10
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"epochs": 40, "model_kwargs": {"width": 32}}))
    assert target_config("cifar10", str(path), data_dir="/d")["epochs"] == 40
    assert target_config("cifar10", str(path), data_dir="/d")["data_dir"] == "/d"
    with pytest.raises(AutosoftError, match="trains on 'cifar100' but the search is on 'cifar10'"):
        target_config("cifar10", {"dataset": "cifar100"})
    path.write_text("{oops")
    with pytest.raises(AutosoftError, match="invalid JSON at line 1"):
        target_config("cifar10", str(path))
    with pytest.raises(AutosoftError, match="cannot read it"):
        target_config("cifar10", str(tmp_path / "missing.json"))
    with pytest.raises(AutosoftError, match="unknown field 'epoch'"):
        target_config("cifar10", {"epoch": 3})
    with pytest.raises(AutosoftError, match="epochs: expected an integer >= 1"):
        target_config("cifar10", {"epochs": 0})


def test_proxy_config_auto_preset_and_overrides():
    target = target_config("cifar10", W32)
    auto, notes = proxy_config("cifar10", "auto", target=target, n_train=50000, threads=1)
    assert auto["epochs"] == 40 and auto["threads"] == 1 and notes[0] == "derived from the target"
    preset, notes = proxy_config("cifar10", "cpu", target=target, n_train=50000)
    assert preset["model_kwargs"] == {"width": 16} and preset["epochs"] == 15 and notes[0] == "the 'cpu' preset"
    over, notes = proxy_config("cifar10", {"epochs": 3}, target=target, n_train=50000)
    assert over["epochs"] == 3 and over["train_size"] == 1250 and "overridden: epochs" in notes
    with pytest.raises(AutosoftError, match="allowed: auto \\(derived from the target\\), cpu, gpu"):
        proxy_config("cifar10", "tpu", target=target, n_train=50000)


def test_proxy_cost_sizes_the_derived_proxy_and_is_checked():
    target = target_config("cifar10", W32)
    # 1/16 of the cost: 312 images at the target's 40 epochs, in about its 760 steps (batch 16, lr / 16)
    cheap, notes = proxy_config("cifar10", {"cost": "1/16"}, target=target, n_train=50000)
    assert (cheap["train_size"], cheap["epochs"], cheap["batch_size"]) == (312, 40, 16)
    assert cheap["lr"] == pytest.approx(0.2 / 16) and notes[0] == "derived from the target at 0.0625 of its cost"
    assert proxy_config("cifar10", {"cost": 0.0625}, target=target, n_train=50000)[0] == cheap
    default, _ = proxy_config("cifar10", {"cost": 0.25}, target=target, n_train=50000)
    assert default == proxy_config("cifar10", "auto", target=target, n_train=50000)[0]
    for bad in ("0", "1.5", "a quarter", "1/0", -0.25):
        with pytest.raises(AutosoftError, match=f"proxy cost '?{bad}'?: expected a share of one target run in"):
            proxy_config("cifar10", {"cost": bad}, target=target, n_train=50000)
    with pytest.raises(AutosoftError, match="the 'cpu' preset has its own size"):
        proxy_config("cifar10", {"preset": "cpu", "cost": 0.5}, target=target, n_train=50000)


def test_proxy_validates_every_epoch_only_for_early_stopping():
    target = target_config("cifar10", W32)
    off, notes = proxy_config("cifar10", "auto", target=target, n_train=50000)
    assert off["val_every"] == 0 and "validated after the last epoch only" in notes
    asha, notes = proxy_config("cifar10", "cpu", target=target, n_train=50000, early_stopping="asha")
    assert asha["val_every"] == 1 and "validated after the last epoch only" not in notes
    kept, _ = proxy_config("cifar10", {"val_every": 5}, target=target, n_train=50000)
    assert kept["val_every"] == 5
    with pytest.raises(AutosoftError, match="proxy val_every: early stopping \\(asha\\) scores every epoch"):
        proxy_config("cifar10", {"val_every": 0}, target=target, n_train=50000, early_stopping="asha")


def test_image_size_and_test_fraction_flow_from_the_target_to_proxy_and_confirmation():
    target = target_config("imagefolder:x", {**W32, "test_fraction": 0.3}, image_size=64)
    assert target["image_size"] == 64 and target["test_fraction"] == 0.3
    for preset in ("auto", "cpu", {"preset": "gpu", "epochs": 2}):
        proxy, _ = proxy_config("imagefolder:x", preset, target=target, n_train=5000)
        assert (proxy["image_size"], proxy["test_fraction"]) == (64, 0.3), preset
    assert confirmation_config(target, proxy)["image_size"] == 64
    assert target_config("cifar10")["image_size"] is None  # unset: the data set's own size
    with pytest.raises(AutosoftError, match="proxy image_size 32 differs from the target's 64.*--image-size"):
        proxy_config("imagefolder:x", {"image_size": 32}, target=target, n_train=5000)


def test_confirmation_config_and_plan():
    proxy, _ = derive_proxy(W32, n_train=50000)
    full = confirmation_config(W32, proxy)
    assert full["epochs"] == 40 and full["val_size"] == 5000 and full["eval_test"] is False
    assert full["val_every"] == 0  # only the final score is compared
    half = confirmation_config(W32, proxy, 0.5)
    assert half["epochs"] == 20 and half["warmup_epochs"] == 1.0
    with pytest.raises(AutosoftError, match="fraction in \\(0, 1\\]"):
        confirmation_config(W32, proxy, 1.5)
    assert confirmation_plan(None, None, 1.0, on_gpu=False) == \
        {"top_k": 3, "seeds": 2, "max_seeds": 4, "fidelity": 1.0, "time_limit_s": None}
    assert confirmation_plan(None, None, 1.0, on_gpu=True) == \
        {"top_k": 5, "seeds": 3, "max_seeds": 6, "fidelity": 1.0, "time_limit_s": None}
    assert confirmation_plan(0, 1, 0.25, on_gpu=False)["top_k"] == 0
    assert confirmation_plan(1, 5, 1.0, on_gpu=False)["max_seeds"] == 5  # the cap is never below the start
    assert confirmation_plan(1, 2, 1.0, on_gpu=False, max_seeds=3, time_limit_s="20m")["time_limit_s"] == 1200
    for bad, kw, match in (((-1, 2, 1.0), {}, "confirm: expected an integer >= 0"), ((1, 0, 1.0), {}, "confirm seeds"),
                           ((1, 1, 0.0), {}, "confirm fidelity"),
                           ((1, 3, 1.0), {"max_seeds": 2}, "confirm max seeds: expected an integer >= the starting"),
                           ((1, 2, 1.0), {"time_limit_s": "soon"}, "confirm time limit")):
        with pytest.raises(AutosoftError, match=match):
            confirmation_plan(*bad, on_gpu=False, **kw)


def test_chance_note_uses_the_majority_class_and_the_noise():
    balanced = torch.arange(1000) % 10  # chance 0.1, three std errors 0.028
    assert chance_note(0.12, balanced)["chance"] == pytest.approx(0.1)
    assert chance_note(0.12, balanced)["noise"] == pytest.approx(3 * (0.1 * 0.9 / 1000) ** 0.5)
    assert chance_note(0.135, balanced) is None
    skewed = torch.cat([torch.zeros(700), torch.ones(300)]).long()  # always "0" scores 0.70
    note = chance_note(0.72, skewed)
    assert note["chance"] == pytest.approx(0.7) and "within noise of chance (0.700" in note["message"]
    assert chance_note(0.9, skewed) is None
    assert chance_note(0.2, balanced, metric="val_ece") is None and chance_note(None, balanced) is None
