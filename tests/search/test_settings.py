"""Search settings: each one checked once, with one clear line; --resume checks the saved ones."""

import json

import pytest

from autosoft.errors import AutosoftError
from autosoft.search import parse_objectives, parse_time_limit
from autosoft.search.settings import check_budget, choose_baselines, output_folder, save_settings


def test_objective_and_time_limit_parsing():
    assert parse_objectives("acc") == (["val_acc"], ["max"])
    assert parse_objectives("acc,ece") == (["val_acc", "val_ece"], ["max", "min"])
    assert parse_objectives(("val_acc",)) == (["val_acc"], ["max"])
    assert parse_objectives("robust") == (["val_robust_acc"], ["max"])
    assert parse_objectives("robust,ece") == (["val_robust_acc", "val_ece"], ["max", "min"])
    with pytest.raises(AutosoftError, match="unknown objective 'loss'; allowed: robust, acc, ece, nll, occlusion, shift"):
        parse_objectives("acc,loss")
    with pytest.raises(AutosoftError, match="one or two different"):
        parse_objectives("acc,ece,nll")
    assert parse_time_limit("90") == 90 and parse_time_limit("30m") == 1800 and parse_time_limit("1.5h") == 5400
    with pytest.raises(AutosoftError, match="time limit"):
        parse_time_limit("soon")


def test_budget_and_output_folder(tmp_path):
    assert check_budget(3) == 3
    for bad in (0, -1, True, 2.5, "3"):
        with pytest.raises(AutosoftError, match="budget: expected an integer >= 1"):
            check_budget(bad)
    assert output_folder(tmp_path / "new", "cifar10", resume=False) == (tmp_path / "new").resolve()
    with pytest.raises(AutosoftError, match="already exists; pass --resume"):
        output_folder(tmp_path, "cifar10", resume=False)
    assert output_folder(tmp_path, "cifar10", resume=True) == tmp_path.resolve()


def _finish_a_trial(out, study_name):
    import optuna
    study = optuna.create_study(study_name=study_name, storage=f"sqlite:///{out / 'study.db'}")
    study.tell(study.ask(), 0.5)


def test_resume_check_compares_the_search_not_its_speed(tmp_path):
    fresh = {"dataset": "cifar10", "space": "soft", "objectives": ["val_acc"], "seed": 0, "baselines": [],
             "proxy": {"epochs": 2, "threads": 1, "data_dir": "/a"}, "budget": 4, "storage": None,
             "target": {"epochs": 8, "data_dir": "/a"}, "sampler": "tpe", "early_stopping": "off",
             "confirmation": {"top_k": 3, "seeds": 2, "fidelity": 1.0, "config": {"epochs": 8, "threads": 1}},
             "study_name": "first"}
    out = tmp_path / "s"
    assert save_settings(out, resume=False, fresh=fresh) == fresh
    _finish_a_trial(out, "first")  # a search that finished a trial: its folder is kept for --resume
    # threads, the data folder and the budget may change; the study name is kept
    later = {**fresh, "proxy": {"epochs": 2, "threads": 4, "data_dir": "/b"}, "budget": 8, "study_name": "second"}
    kept = save_settings(out, resume=True, fresh=later)
    assert kept["study_name"] == "first" and kept["budget"] == 8 and kept["proxy"]["threads"] == 4
    assert json.loads((out / "search.json").read_text()) == kept
    assert sorted(p.name for p in out.iterdir()) == ["search.json", "study.db"]  # no temporary file left
    # the fields that differ, not two whole configs, and how the saved proxy was made
    (out / "search.json").write_text(json.dumps({**kept, "proxy_rules": ["derived from the target at 0.0625 of its cost"]}))
    with pytest.raises(AutosoftError, match=r"--resume: proxy differs from the search in .* \(epochs 2 there, 3 now\); "
                                            r"rerun with the same settings \(that proxy: derived from the target at 0.0625"):
        save_settings(out, resume=True, fresh={**fresh, "proxy": {"epochs": 3}})
    # a config field a newer autosoft added, at its default, is no difference; off its default it is
    newer = {**fresh, "proxy": {**fresh["proxy"], "val_every": 1}, "target": {**fresh["target"], "val_every": 1}}
    assert save_settings(out, resume=True, fresh=newer)["study_name"] == "first"
    with pytest.raises(AutosoftError, match="--resume: proxy differs"):
        save_settings(out, resume=True, fresh={**newer, "proxy": {**fresh["proxy"], "val_every": 0}})
    with pytest.raises(AutosoftError, match="--resume: seed differs"):
        save_settings(out, resume=True, fresh={**fresh, "seed": 1})
    with pytest.raises(AutosoftError, match="--resume: target differs"):
        save_settings(out, resume=True, fresh={**fresh, "target": {"epochs": 9, "data_dir": "/a"}})
    with pytest.raises(AutosoftError, match="--resume: sampler differs"):
        save_settings(out, resume=True, fresh={**fresh, "sampler": "random"})
    # more confirmed policies or seeds only add runs; another confirmation config is another stage
    more = {**fresh["confirmation"], "top_k": 5, "seeds": 3, "config": {"epochs": 8, "threads": 2}}
    assert save_settings(out, resume=True, fresh={**fresh, "confirmation": more})["confirmation"]["top_k"] == 5
    with pytest.raises(AutosoftError, match="--resume: confirmation differs"):
        save_settings(out, resume=True, fresh={**fresh, "confirmation": {**more, "config": {"epochs": 4}}})
    (tmp_path / "other").mkdir()
    with pytest.raises(AutosoftError, match="not a search folder"):
        save_settings(tmp_path / "other", resume=True, fresh=fresh)


def test_baselines_are_the_fixed_policies_and_a_resume_may_add_some(tmp_path):
    from autosoft.policy import load_policy
    soft, hard = load_policy("softaug"), load_policy("randaugment")
    assert choose_baselines(True, [soft]) == ["baseline", "autoaugment-cifar10", "randaugment", "trivialaugment",
                                              "softaug"]
    assert choose_baselines(True, [hard]) == ["baseline", "autoaugment-cifar10", "randaugment", "trivialaugment"]
    assert choose_baselines(False, [soft]) == [] and choose_baselines(["softaug"], [hard]) == ["softaug"]

    fresh = {"dataset": "cifar10", "space": "soft", "objectives": ["val_acc"], "seed": 0,
             "baselines": ["baseline", "trivialaugment"], "proxy": {"epochs": 2}, "budget": 4, "storage": None,
             "target": {"epochs": 8}, "sampler": "tpe", "early_stopping": "off",
             "confirmation": {"top_k": 3, "seeds": 2, "fidelity": 1.0, "config": {"epochs": 8}}, "study_name": "first"}
    out = tmp_path / "s"
    save_settings(out, resume=False, fresh=fresh)
    _finish_a_trial(out, "first")
    # a search saved with the older, shorter list resumes with today's: the added ones run and are confirmed
    today = ["baseline", "autoaugment-cifar10", "randaugment", "trivialaugment"]
    assert save_settings(out, resume=True, fresh={**fresh, "baselines": today})["baselines"] == today
    # ... but none is taken away, and a search run without baselines does not gain them
    for fewer in (["baseline"], []):
        with pytest.raises(AutosoftError, match="--resume: baselines differs"):
            save_settings(out, resume=True, fresh={**fresh, "baselines": fewer})
    none = tmp_path / "none"
    save_settings(none, resume=False, fresh={**fresh, "baselines": [], "study_name": "none"})
    _finish_a_trial(none, "none")
    with pytest.raises(AutosoftError, match="--resume: baselines differs"):
        save_settings(none, resume=True, fresh={**fresh, "baselines": today})


def test_a_search_saved_before_a_train_field_existed_resumes_with_it_at_its_default(tmp_path):
    from autosoft.train import TrainConfig
    old = TrainConfig(epochs=2).to_dict()
    for added in ("image_size", "test_fraction"):  # what a search of an older autosoft saved lacked them
        old.pop(added)
    fresh = {"dataset": "cifar10", "space": "soft", "objectives": ["val_acc"], "seed": 0, "baselines": [],
             "proxy": old, "budget": 4, "storage": None, "target": old, "sampler": "tpe", "early_stopping": "off",
             "confirmation": {"top_k": 1, "seeds": 1, "fidelity": 1.0, "config": old}, "study_name": "first"}
    out = tmp_path / "s"
    save_settings(out, resume=False, fresh=fresh)
    _finish_a_trial(out, "first")
    now = TrainConfig(epochs=2).to_dict()
    same = {**fresh, "proxy": now, "target": now, "confirmation": {**fresh["confirmation"], "config": now}}
    assert save_settings(out, resume=True, fresh=same)["study_name"] == "first"
    with pytest.raises(AutosoftError, match="--resume: proxy differs"):
        save_settings(out, resume=True, fresh={**same, "proxy": {**now, "image_size": 64}})
