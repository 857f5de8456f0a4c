"""Evaluating a run folder: the test split's scores again, from the saved weights."""

import json

import pytest

from autosoft.config import TrainConfig
from autosoft.errors import AutosoftError
from autosoft.evaluation import evaluate_run
from autosoft.train import train


def test_evaluate_run_scores_a_finished_run_as_it_ended(small_cifar10, tmp_path):
    config = TrainConfig(model="proxy", model_kwargs={"width": 8}, epochs=1, batch_size=100, lr=0.1, val_size=200,
                         data_dir=str(small_cifar10), threads=2)
    final = train(config, "baseline", run_dir=tmp_path / "run")
    report = evaluate_run(tmp_path / "run", device="cpu")
    assert report["top1"] == pytest.approx(final["top1"]) and report["ece"] == pytest.approx(final["ece"])
    assert json.loads((tmp_path / "run" / "eval.json").read_text()) == report
    assert (tmp_path / "run" / "reliability.png").stat().st_size > 0
    with pytest.raises(AutosoftError, match="not an autosoft run directory"):
        evaluate_run(tmp_path / "elsewhere")
