"""The run folder: which folders a run may take, and configs saved by an older autosoft."""

import json

import pytest
import torch

from autosoft.config import TrainConfig
from autosoft.errors import AutosoftError
from autosoft.policy import load_policy
from autosoft.rundir import RunDir, with_defaults
from autosoft.train import train


def _config(root, **kw):
    base = dict(dataset="cifar10", model="proxy", model_kwargs={"width": 8}, epochs=3, batch_size=100,
                lr=0.1, val_size=200, data_dir=str(root), threads=2)
    return TrainConfig(**{**base, **kw})


class _Stop(Exception):
    pass


def test_with_defaults_fills_the_fields_added_since():
    saved = {k: v for k, v in TrainConfig(epochs=4).to_dict().items() if k not in ("split_seed", "image_size")}
    assert with_defaults(saved) == TrainConfig(epochs=4).to_dict()
    assert with_defaults(None) is None


def test_a_run_that_trained_nothing_is_taken_over_and_nothing_else_is(small_cifar10, tmp_path):
    """A folder left with only its config (a run of an older autosoft that failed before its first
    epoch) is replaced by a different run; one with a logged epoch or a checkpoint is the user's."""
    config = _config(small_cifar10, epochs=1, eval_test=False)
    run = RunDir(tmp_path / "r")
    run.prepare(_config(small_cifar10, model="vgg99"), load_policy("softaug"), torch.device("cpu"))
    run.metrics.write_text("")
    final = train(config, "baseline", run_dir=run.path)
    assert json.loads(run.config.read_text())["train"]["model"] == "proxy" and run.final.exists()
    assert json.loads(run.policy.read_text())["name"] == "baseline"
    assert len(run.metrics.read_text().splitlines()) == 1 and final["epochs"] == 1
    for leftover in ("metrics.jsonl", "checkpoint.pt"):
        other = RunDir(tmp_path / leftover)
        other.prepare(_config(small_cifar10, lr=0.05), load_policy("baseline"), torch.device("cpu"))
        (other.path / leftover).write_text('{"epoch": 0}\n')
        before = other.config.read_text()
        with pytest.raises(AutosoftError, match="different config or policy"):
            train(config, "baseline", run_dir=other.path)
        assert other.config.read_text() == before and (other.path / leftover).read_text() == '{"epoch": 0}\n'


def test_a_run_written_before_a_config_field_existed_resumes(small_cifar10, tmp_path):
    config = _config(small_cifar10, epochs=2, eval_test=False, threads=1)  # one thread: this box is shared

    def stop(epoch, metrics):
        raise _Stop
    with pytest.raises(_Stop):
        train(config, "none", run_dir=tmp_path / "r", report=stop)
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    for added in ("image_size", "test_fraction"):
        del saved["train"][added]
    (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
    assert train(config, "none", run_dir=tmp_path / "r")["epochs"] == 2  # resumed, not refused
    assert len((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()) == 2
