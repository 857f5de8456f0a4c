import json

import pytest

from autosoft.errors import AutosoftError
from autosoft.ops import OPS
from autosoft.policy import BUILTIN_POLICIES, Policy, load_policy


@pytest.mark.parametrize("name", list(BUILTIN_POLICIES))
def test_builtin_policies_round_trip_through_json(name, tmp_path):
    policy = load_policy(name)
    path = policy.save(tmp_path / "p.json")
    assert load_policy(path) == policy
    assert json.loads(path.read_text())["version"] == 1
    assert all(op in OPS for op in policy.ops_used())


def test_autoaugment_cifar10_matches_published_policy():
    policy = load_policy("autoaugment-cifar10")
    assert len(policy.subpolicies) == 25
    first = policy.subpolicies[0]
    assert (first[0].op, first[0].probability, first[0].magnitude) == ("Invert", 0.1, 1.0)
    assert (first[1].op, first[1].probability) == ("Contrast", 0.2)
    assert first[1].magnitude == pytest.approx(6 / 9, abs=1e-4)  # bin 6 of torchvision's 10


def test_softaug_is_the_papers_default():
    st = load_policy("softaug").soft_targets
    assert st.p_min is None and st.power == 2.0 and st.sensitivity == {"SoftCrop": 1.0}


def test_repr_is_readable():
    text = repr(load_policy("autoaugment-cifar10"))
    assert "25 sub-policies" in text and "(Invert, p=0.1, m=1)" in text


def _minimal(**extra):
    return {"version": 1, "kind": "none", **extra}


@pytest.mark.parametrize("data, message", [
    ({"kind": "none"}, "missing field 'version'"),
    (_minimal(version=2), "unsupported version 2"),
    (_minimal(kind="magic"), "policy: kind: expected one of none, subpolicies"),
    (_minimal(base=[["Blur", 0.5, 0.5]]), "policy: base[0][0]: unknown op 'Blur'; allowed: Identity"),
    (_minimal(base=[["ShearX", 1.5, 0.5]]), "policy: base[0][1]: expected a number in [0, 1], got 1.5"),
    (_minimal(base=[["ShearX", 0.5, -0.1]]), "policy: base[0][2]: expected a number in [0, 1]"),
    (_minimal(base=[["ShearX", 0.5]]), "policy: base[0]: expected [op, probability, magnitude]"),
    (_minimal(base="ShearX"), "policy: base: expected a JSON list"),
    (_minimal(colour=1), "policy: unknown field 'colour'"),
    (_minimal(soft_targets={"mode": "hard"}), "policy: soft_targets.mode: expected one of target, weight, both"),
    (_minimal(soft_targets={"sensitivity": {"Blur": 1}}), "policy: soft_targets.sensitivity: unknown field 'Blur'"),
    (_minimal(soft_targets={"power": "2"}), "policy: soft_targets.power: expected a number"),
    ({"version": 1, "kind": "subpolicies"}, "needs a 'subpolicies' list"),
    ({"version": 1, "kind": "randaugment", "randaugment": {"num_ops": 2.5}}, "num_ops: expected an integer"),
    (_minimal(subpolicies=[]), "only allowed when kind is 'subpolicies'"),
    ([1, 2], "policy: expected a JSON object"),
])
def test_bad_policies_name_the_field(data, message):
    with pytest.raises(AutosoftError) as err:
        Policy.from_dict(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_invalid_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1,')
    with pytest.raises(AutosoftError, match="invalid JSON at line 1"):
        load_policy(bad)
    with pytest.raises(AutosoftError, match="built-in policies: none, baseline"):
        load_policy("no-such-policy")


def test_policy_file_is_never_executed(tmp_path):
    # A pickle or Python payload is just invalid JSON, never loaded.
    evil = tmp_path / "evil.json"
    evil.write_bytes(b"\x80\x04\x95cos\nsystem\n")
    with pytest.raises(AutosoftError):
        load_policy(evil)
