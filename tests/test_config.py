"""The train config: its fields, their checks, and the advice on too few optimizer steps."""

import pytest

from autosoft.config import TrainConfig, few_steps_warning
from autosoft.errors import AutosoftError


def test_unknown_fields_and_bad_values_are_named():
    with pytest.raises(AutosoftError, match="unknown field 'epoch'"):
        TrainConfig.from_dict({"epoch": 3})
    assert TrainConfig.from_dict(TrainConfig(epochs=3).to_dict()) == TrainConfig(epochs=3)
    with pytest.raises(AutosoftError, match=r"train config lr: expected a number > 0, got 0"):
        TrainConfig(lr=0).validate()


def test_few_steps_warning_known_answers():
    # the defaults on digits' 1,438 train images: 5 steps an epoch, 50 in all
    message = few_steps_warning(TrainConfig(), 1438)
    assert message.startswith("this trains only 50 optimizer steps (1438 images / batch 256 = 5 per epoch x 10")
    assert "e.g. 64, lr 0.05" in message  # 1,438 x 10 / 64 = 224 steps, the lr scaled with the batch
    assert "more epochs (e.g. 25)" in few_steps_warning(TrainConfig(batch_size=16), 100)
    assert few_steps_warning(TrainConfig(), 50000) is None  # CIFAR's defaults: 1,950 steps
    assert few_steps_warning(TrainConfig(epochs=40), 5000) is None  # the table's target: 760
