import json
import subprocess
import sys

import pytest

from autosoft.cli import main


def test_show_ops_lists_every_op(capsys):
    from autosoft.ops import OPS
    assert main(["show", "ops"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in OPS)


def test_show_policy_and_json(capsys):
    assert main(["show", "autoaugment-cifar10", "--json"]) == 0
    out = capsys.readouterr().out
    assert "25 sub-policies" in out and '"version": 1' in out


def test_show_policies_lists_builtins(capsys):
    assert main(["show", "policies"]) == 0
    out = capsys.readouterr().out
    assert all(f"Policy({n}" in out for n in ("none", "baseline", "randaugment", "trivialaugment", "softaug"))


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON at line 1"),
    (json.dumps({"version": 1, "base": [["Blur", 1, 1]]}), "unknown op 'Blur'; allowed: Identity"),
    (json.dumps({"version": 1, "base": [["Rotate", 1, 3]]}), "p.json: base[0][2]: expected a number in [0, 1], got 3"),
    (json.dumps({"base": []}), "missing field 'version'"),
])
def test_bad_policy_file_is_one_line_exit_2(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    r = subprocess.run([sys.executable, "-m", "autosoft.cli", "show", str(path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_unknown_subcommand_is_one_line():
    r = subprocess.run([sys.executable, "-m", "autosoft.cli", "serch"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "invalid choice" in r.stderr


def test_flags_overlay_the_config_file_for_train_and_search(tmp_path):
    from autosoft.cli import proxy_settings_from_args, train_config_from_args, build_parser
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 7, "lr": 0.2, "model_kwargs": {"width": 16, "depth": 2}}))
    parser = build_parser()
    args = parser.parse_args(["train", "--config", str(path), "--epochs", "3", "--width", "8", "--download"])
    config = train_config_from_args(args)
    assert (config.epochs, config.lr, config.model_kwargs, config.download) == (3, 0.2, {"width": 8, "depth": 2}, True)
    assert train_config_from_args(parser.parse_args(["train", "--config", str(path)])).epochs == 7
    args = parser.parse_args(["search", "--dataset", "cifar10", "--budget", "2", "--proxy", "cpu",
                              "--config", str(path), "--val-size", "50", "--width", "4"])
    assert proxy_settings_from_args(args) == {
        "preset": "cpu", "epochs": 7, "lr": 0.2, "model_kwargs": {"width": 4, "depth": 2}, "val_size": 50}


def test_image_size_and_test_fraction_flags_for_train_and_search(monkeypatch, capsys):
    import autosoft.cli
    from autosoft.cli import train_config_from_args, build_parser, main
    from autosoft.errors import AutosoftError
    args = build_parser().parse_args(["train", "--image-size", "48", "--test-fraction", "0.3"])
    config = train_config_from_args(args)
    assert (config.image_size, config.test_fraction) == (48, 0.3)
    assert train_config_from_args(build_parser().parse_args(["train"])).image_size is None
    seen = {}

    def fake_search(**kwargs):  # the search gets them for its target (and so its proxy), not as proxy overrides
        seen.update(kwargs)
        raise AutosoftError("stop here")
    monkeypatch.setattr(autosoft.cli, "run_search", fake_search)
    assert main(["search", "--dataset", "imagefolder:x", "--budget", "2", "--image-size", "64"]) == 2
    assert seen["image_size"] == 64 and "test_fraction" not in seen and "image_size" not in seen["proxy"]


def test_search_reuse_confirmation_must_name_a_search_folder(tmp_path, capsys):
    assert main(["search", "--dataset", "cifar10", "--budget", "2", "--reuse-confirmation", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a search's output folder (no search.json there)" in err


def test_search_proxy_cost_is_a_proxy_setting_and_a_bad_one_is_one_line(tmp_path, capsys):
    from autosoft.cli import build_parser, proxy_settings_from_args
    args = build_parser().parse_args(["search", "--dataset", "cifar10", "--budget", "2", "--proxy-cost", "1/16"])
    assert proxy_settings_from_args(args) == {"preset": "auto", "cost": "1/16"}
    out = tmp_path / "s"
    assert main(["search", "--dataset", "cifar10", "--budget", "2", "--proxy-cost", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "proxy cost '2': expected a share of one target run in (0, 1]" in err
    assert not out.exists()
