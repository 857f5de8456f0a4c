"""Search spaces: every sampled point is a valid policy; user space files load, edit and join."""

import pickle

import optuna
import pytest

from autosoft.errors import AutosoftError
from autosoft.policy import Policy, load_policy
from autosoft.search import (SPACE_NAMES, SPACES_DIR, describe_spaces, load_space, make_sampler,
                             sample_policies)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_every_sampled_point_is_a_valid_policy(name):
    policies = sample_policies(name, 200, seed=1)  # validates each one (Policy.from_dict)
    assert len(policies) == 200
    for policy in policies[:20]:
        assert Policy.from_json(policy.to_json()) == policy
    soft = "soft" in name
    assert all((p.soft_targets is not None) == soft for p in policies)
    kinds = {p.kind for p in policies}
    assert kinds == {"none" if name == "soft" else name.split("+")[0].replace("autoaugment", "subpolicies")}


def test_spaces_cover_their_ranges():
    aa = sample_policies("autoaugment+soft", 300, seed=2)
    entries = [e for p in aa for sub in p.subpolicies for e in sub]
    assert len(aa[0].subpolicies) == 5 and all(len(sub) == 2 for sub in aa[0].subpolicies)
    assert {e.op for e in entries} == set(load_space("autoaugment").parts[0].__globals__["OPS"])
    assert {e.probability for e in entries} == {round(i / 10, 1) for i in range(11)}  # a clean 0.1 grid
    soft = [p.soft_targets for p in aa]
    assert {s.mode for s in soft} == {"target", "weight", "both"}
    assert any(s.p_min is None for s in soft) and all(s.p_min is None or 0 <= s.p_min <= 0.5 for s in soft)
    assert all(0.5 <= s.power <= 4 for s in soft)
    assert {p.base[0].op for p in aa} == {"SoftCrop", "PadCrop"}
    ra = sample_policies("randaugment", 100, seed=3)
    assert {p.randaugment.num_ops for p in ra} == {1, 2, 3}
    assert all(p.soft_targets is None for p in ra)


def test_space_is_a_pure_function_of_its_parameters():
    """No computation and no hidden randomness: the stored parameters rebuild the same policy."""
    space = load_space("autoaugment+soft")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        policy = space(trial)
        assert space(optuna.trial.FixedTrial(trial.params)) == policy
        study.tell(trial, 0.0)


def test_tpe_points_are_valid_too():
    space = load_space("randaugment+soft")
    study = optuna.create_study(sampler=make_sampler(1, 20, seed=0), direction="maximize")
    for i in range(15):  # past TPE's 10 random start-up trials
        trial = study.ask()
        Policy.from_dict(space(trial))
        study.tell(trial, float(i % 3))


@pytest.mark.parametrize("n_objectives, kind", [(1, "tpe"), (2, "tpe"), (1, "random")])
def test_samplers_survive_pickling(n_objectives, kind):
    """Ray Tune pickles its searcher, sampler included (optuna 5.1.0's NSGA-II holds a lock);
    the copy goes on drawing exactly the points the original draws."""
    space = load_space("randaugment+soft")
    directions = ["maximize"] * n_objectives
    sampler = make_sampler(n_objectives, 20, seed=0, kind=kind)
    samplers = sampler, pickle.loads(pickle.dumps(sampler))
    studies = [optuna.create_study(sampler=s, directions=directions) for s in samplers]
    for i in range(12):  # past NSGA-II's first generation (population 5) and into its children
        trials = [study.ask() for study in studies]
        points = [space(trial) for trial in trials]
        assert points[0] == points[1]
        for study, trial in zip(studies, trials):
            study.tell(trial, [float(i % 3)] * n_objectives)
    copy = pickle.loads(pickle.dumps(samplers[1]))  # a copy of a copy that has run
    assert type(copy) is type(sampler)


def test_user_space_file_edited_and_joined(tmp_path):
    text = (SPACES_DIR / "autoaugment.py").read_text()
    text = text.replace('NUM_SUBPOLICIES = 5', 'NUM_SUBPOLICIES = 2')
    text = text.replace('OPS = [', 'OPS = ["Rotate", "Cutout"]\n_UNUSED = [')
    path = tmp_path / "my_space.py"
    path.write_text(text)
    for name in (str(path), f"{path}+soft"):
        policies = sample_policies(name, 50, seed=0)
        assert {e.op for p in policies for sub in p.subpolicies for e in sub} == {"Rotate", "Cutout"}
        assert all(len(p.subpolicies) == 2 for p in policies)
    assert all(p.soft_targets is not None for p in sample_policies(f"{path}+soft", 5))


def test_space_errors_are_one_clear_line(tmp_path):
    with pytest.raises(AutosoftError, match="unknown search space 'rand'; allowed: autoaugment, randaugment"):
        load_space("rand")
    with pytest.raises(AutosoftError, match="unknown search space 'nope'"):
        load_space("autoaugment+nope")
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with pytest.raises(AutosoftError, match="defines no function space"):
        load_space(str(empty))
    broken = tmp_path / "broken.py"
    broken.write_text("def space(trial:\n")
    with pytest.raises(AutosoftError, match="cannot load .*SyntaxError"):
        load_space(str(broken))
    bad = tmp_path / "bad.py"
    bad.write_text("def space(trial):\n    return {'version': 1, 'kind': 'none', "
                   "'base': [['Rotate', trial.suggest_float('p', 0, 2), 0.5]]}\n")
    with pytest.raises(AutosoftError, match=r"invalid policy .*base\[0\]\[1\]"):
        sample_policies(str(bad), 30)
    raising = tmp_path / "raising.py"  # imports fine, fails when called: one line naming the file
    raising.write_text("def space(trial):\n    return {'version': 1}['kind']\n")
    with pytest.raises(AutosoftError, match=f"{raising}: space\\(trial\\) raised KeyError: 'kind'"):
        sample_policies(f"{raising}+soft", 2)


def test_a_known_policy_first_keeps_its_ops_and_searches_the_rest(tmp_path):
    """"autoaugment-cifar10+soft": the published ops untouched in every point, only the crop and
    the soft-target curve searched; a policy file works alike, its provenance dropped."""
    aa = load_policy("autoaugment-cifar10")
    policies = sample_policies("autoaugment-cifar10+soft", 40, seed=0)
    assert all(p.subpolicies == aa.subpolicies and p.kind == "subpolicies" for p in policies)
    assert all(p.name == "autoaugment-cifar10+soft" and p.soft_targets is not None for p in policies)
    assert len({p.soft_targets.power for p in policies}) == 40  # the curve is what varies
    assert {p.base[0].op for p in policies} == {"SoftCrop", "PadCrop"}  # the soft part's crop replaces AA's
    space = load_space("autoaugment-cifar10+soft")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    space(trial)
    assert trial.params and not any(k.startswith("sp") for k in trial.params)  # no op is a parameter

    own = Policy.from_dict({"version": 1, "kind": "subpolicies", "base": [["FlipLR", 0.5, 1.0]],
                            "subpolicies": [[["Rotate", 0.3, 0.4]]], "provenance": {"trial": 7}})
    path = tmp_path / "mine.json"
    own.save(path)
    joined = sample_policies(f"{path}+soft", 5)
    assert all(p.subpolicies == own.subpolicies and p.provenance is None for p in joined)

    with pytest.raises(AutosoftError, match="a policy with nothing to search; join a searched part to it, "
                                            r"e.g. autoaugment-cifar10\+soft"):
        load_space("autoaugment-cifar10")
    with pytest.raises(AutosoftError, match="'missing.json': no such policy file"):
        load_space("missing.json+soft")
    with pytest.raises(AutosoftError, match="mine.json': a policy may stand only first in a join"):
        load_space(f"soft+{path}")  # an existing file in the wrong place is not called missing
    with pytest.raises(AutosoftError, match="unknown search space 'autoaugment-cifar10'.*a policy first"):
        load_space("soft+autoaugment-cifar10")  # only the first part may be a policy
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1, "kind": "subpolicies", "subpolicies": [[["Nope", 0.5, 0.5]]]}')
    with pytest.raises(AutosoftError, match="unknown op 'Nope'"):
        load_space(f"{broken}+soft")
    # a space's name wins over a policy's: "randaugment+soft" still searches N and M
    assert {p.randaugment.num_ops for p in sample_policies("randaugment+soft", 30)} == {1, 2, 3}


def test_describe_spaces_lists_every_name():
    text = describe_spaces()
    for name in SPACE_NAMES:
        assert any(line.startswith(name + " ") for line in text.splitlines())
    assert "hard labels" in text.splitlines()[0]

