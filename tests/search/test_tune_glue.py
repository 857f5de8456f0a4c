"""How many trials fit, as Ray counts them, and which device a trial trains on: no cluster needed."""

import pytest

from autosoft.errors import AutosoftError
from autosoft.search.tune_glue import trials_that_fit, epochs_done, trial_device, trial_resources


@pytest.mark.parametrize("share, fits", [(0.25, 4), (0.2, 5), (0.1, 10), (0.125, 8), (1 / 3, 3), (0.3, 3), (1, 1)])
def test_gpu_shares_are_counted_as_ray_counts_them(share, fits):
    # Float floor division says 1 // 0.2 == 4 and 1 // 0.1 == 9: a search sharing one GPU five
    # or ten ways ran one trial fewer at a time than Ray would have placed.
    assert trials_that_fit({"CPU": 16, "GPU": 1}, 1, share) == fits
    assert trials_that_fit({"CPU": 16, "GPU": 2}, 1, share) == min(16, 2 * fits)


def test_cpu_shares_and_limits():
    assert trials_that_fit({"CPU": 2}, 0.1, 0) == 20
    assert trials_that_fit({"CPU": 16, "GPU": 1}, 3, 0.125) == 5  # the CPUs are the limit
    with pytest.raises(AutosoftError, match="needs 1 CPU and 0.5 GPU but the Ray cluster has 16 CPU and 0 GPU"):
        trials_that_fit({"CPU": 16}, 1, 0.5)
    with pytest.raises(AutosoftError, match="finer than Ray's resolution"):
        trials_that_fit({"CPU": 16, "GPU": 1}, 1, 0.00001)


def test_trial_resources_defaults_and_checks():
    assert trial_resources(None, None, {"device": "cpu"}) == (1, 0)
    assert trial_resources(2, 0.125, {"device": "auto"}) == (2, 0.125)
    with pytest.raises(AutosoftError, match="expected cpus > 0 and gpus >= 0"):
        trial_resources(1, -0.5, {})


def test_a_worker_assigned_no_gpu_trains_on_the_cpu():
    # ray 2.60.0 leaves CUDA_VISIBLE_DEVICES alone for a worker assigned no GPU: "auto" must not
    # take the GPU behind Ray's back.
    assert trial_device("auto", [], cuda_available=True) == "cpu"
    assert trial_device("auto", ["0"], cuda_available=True) == "auto"
    # No GPU visible: unchanged, so configs saved by runs on CPU machines still match on resume.
    assert trial_device("auto", [], cuda_available=False) == "auto"
    assert trial_device("cuda", [], cuda_available=True) == "cuda"  # asked for explicitly: kept
    assert trial_device("cpu", ["0"], cuda_available=True) == "cpu"


def test_epochs_done_counts_from_the_zero_based_epoch():
    assert epochs_done({"epoch": 0}, 7) == 1 and epochs_done({"epoch": 14.0}, 7) == 15
    assert epochs_done({}, 7) == 7 and epochs_done(None, 0) == 0  # no report: the caller's default
