"""Evaluating a finished or interrupted run folder on its test split: `autosoft eval`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from autosoft.config import TrainConfig, resolve_device
from autosoft.data import channel_mean_std
from autosoft.errors import AutosoftError
from autosoft.files import atomic_write_json
from autosoft.metrics import evaluate, predict_logits
from autosoft.models import build_model
from autosoft.rundir import RunDir, write_plots
from autosoft.train import Normalize, load_data, make_predict


def evaluate_run(run_dir: str | Path, *, data_dir: str | None = None, device: str = "auto") -> dict:
    """Evaluate a run directory's model (final weights, else the last checkpoint) on its test split.

    Temperature is fitted on the run's own validation split, rebuilt from its config.
    Writes eval.json and reliability.png into the run directory.
    """
    run = RunDir(run_dir)
    if not run.config.exists():
        raise AutosoftError(f"{run.path} is not an autosoft run directory (no config.json); "
                            "pass the --out folder of 'autosoft train'")
    record = json.loads(run.config.read_text())
    config = TrainConfig.from_dict(record["train"])
    if data_dir is not None:
        config.data_dir = data_dir
    config.eval_test = True
    dev = resolve_device(device)
    weights_path = run.path / "model.pt"
    if weights_path.exists():
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    elif run.checkpoint.exists():
        state = torch.load(run.checkpoint, map_location="cpu", weights_only=True)["model"]
    else:
        raise AutosoftError(f"{run.path} has no model.pt or checkpoint.pt yet; train for at least one epoch")
    data = load_data(config)
    if run.test_split.exists() and data.test_split is not None:
        recorded = json.loads(run.test_split.read_text())
        if recorded.get("test_files") != data.test_split["test_files"]:
            raise AutosoftError(f"the test split carved from {data.test_split['folder']} is not the one recorded in "
                                f"{run.test_split} (images added or removed since training?); evaluating would mix "
                                "training images into the test split; restore the folder or train again")
    model = build_model(config.model, data.train.num_classes, in_channels=data.train.images.shape[1],
                        **config.model_kwargs)
    model.load_state_dict(state)
    model = model.to(dev).to(memory_format=torch.channels_last)
    normalize = Normalize(*channel_mean_std(data.train)).to(dev)
    predict = make_predict(model, normalize, dev)
    val_logits = predict_logits(predict, data.val.images) if data.val is not None else None
    report = evaluate(predict, data.test.images, data.test.labels, val_logits=val_logits,
                      val_labels=data.val.labels if data.val is not None else None, seed=config.seed)
    write_plots(run.path, [], report.pop("reliability"))
    report["test_pixels_sha256"] = data.test.pixels_sha256()
    atomic_write_json(run.path / "eval.json", report)
    return report
