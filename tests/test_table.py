"""experiments/table.py: a finished run counts for a row only if it trained that row's policy."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import table  # noqa: E402  (experiments/ is a folder of scripts, not a package)

from autosoft.errors import AutosoftError  # noqa: E402
from autosoft.policy import load_policy  # noqa: E402


def _finished_run(folder: Path, policy_dict: dict, top1: float) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"policy": policy_dict}))
    (folder / "final.json").write_text(json.dumps({"top1": top1}))


def test_a_re_exported_policy_keeps_its_runs_and_another_policy_is_refused(tmp_path):
    exported = load_policy("autoaugment-cifar10").to_dict()
    exported["provenance"] = {"created": "2026-12-01T17:52:50+00:00"}
    _finished_run(tmp_path / "runs" / "searched-s0", exported, 0.77)
    # The same search exported again: only its provenance differs (a new timestamp, a new field).
    again = dict(exported, provenance={"created": "2026-12-01T20:59:00+00:00", "proxy_ranked": 8})
    (tmp_path / "again.json").write_text(json.dumps(again))
    rows = table.collect({"searched": str(tmp_path / "again.json")}, [0, 1], tmp_path / "runs")
    assert [f["top1"] for f in rows["searched"]] == [0.77]
    # A different policy under the same row name is not counted as that row.
    other = load_policy("randaugment").to_dict()
    (tmp_path / "other.json").write_text(json.dumps(dict(other, name=exported.get("name"))))
    with pytest.raises(AutosoftError, match="holds a finished run of another policy than searched="):
        table.collect({"searched": str(tmp_path / "other.json")}, [0], tmp_path / "runs")


def test_a_table_replaces_what_stands_between_its_markers_and_nothing_else(tmp_path):
    doc = tmp_path / "RESULTS.md"
    other = "text\n<!-- u:start -->\nkept\n<!-- u:end -->\n"
    doc.write_text("# R\n<!-- t:start -->\nold\n<!-- t:end -->\n" + other)
    table.write_between_markers(doc, "| a |\n|---|", "t")
    assert doc.read_text() == "# R\n<!-- t:start -->\n| a |\n|---|\n<!-- t:end -->\n" + other
    doc.write_text("<!-- t:start -->\n<!-- t:end -->\n<!-- t:start -->\n<!-- t:end -->\n")
    with pytest.raises(AutosoftError, match="expected one <!-- t:start --> line followed by one <!-- t:end --> line"):
        table.write_between_markers(doc, "x", "t")
    with pytest.raises(AutosoftError, match="none.md: no such file"):
        table.write_between_markers(tmp_path / "none.md", "x", "t")


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    results = tmp_path / "results"
    config = tmp_path / "c.json"
    config.write_text('{"dataset": "cifar10", "epochs": ')          # cut short
    for args, message in [(["--config", str(tmp_path / "none.json")], "none.json: cannot read a JSON train config"),
                          (["--config", str(config)], "c.json: cannot read a JSON train config")]:
        assert table.main([*args, "--results", str(results), "--policy", "baseline", "--table-only"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not results.exists()   # nothing was written
    # the --doc check comes first, before the config is read
    assert table.main(["--config", str(config), "--results", str(results), "--policy", "baseline",
                       "--doc", str(tmp_path / "none.md")]) == 2
    assert "none.md: no such file" in capsys.readouterr().err


def test_results_md_has_every_marker_the_scripts_write_and_the_readme_none():
    """search_cifar10.sh / search_cifar100.sh (through search_evidence.sh) and proxy_fidelity.py write
    their tables into experiments/RESULTS.md; the README is a user's page and carries no results block."""
    import proxy_fidelity

    markers = ["table", "table-cifar100", "claims-cifar10", "claims-cifar100"] + \
        [st.marker for st in proxy_fidelity.STUDIES.values()]
    results = (ROOT / "experiments" / "RESULTS.md").read_text()
    for marker in markers + ["frontier-cifar10", "costs-cifar10"]:
        start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
        assert results.count(start) == 1 and results.count(end) == 1, marker
        block = results.split(start)[1].split(end)[0]
        if marker in markers:   # a table from its first line
            assert block.strip().startswith("| ") and block.count("\n|") >= 3, f"{marker}: an empty table"
        else:                   # a line saying what the table holds, then the table
            assert block.count("\n| ") >= 3, f"{marker}: an empty table"
    for marker in ("frontier-cifar100", "costs-cifar100"):   # written once CIFAR-100's races finish
        assert results.count(f"<!-- {marker}:start -->") == 1 and results.count(f"<!-- {marker}:end -->") == 1, marker
    evidence = (ROOT / "experiments" / "search_evidence.sh").read_text()
    # table, claims, frontier and costs, each into its DATASET's markers
    assert evidence.count("--doc experiments/RESULTS.md") == 4 and "README.md" not in evidence
    for script, marker in (("search_cifar10.sh", "table"), ("search_cifar100.sh", "table-cifar100")):
        # the MARKER argument, right after the SEEDS one ("0 1 2")
        assert re.search(rf'"[0-9 ]+" {marker}( |$)', (ROOT / "experiments" / script).read_text(), re.M), script
    assert ":start -->" not in (ROOT / "README.md").read_text()


def test_a_dev_split_table_never_loads_test_and_keeps_its_runs_apart(small_cifar10, tmp_path, capsys):
    """--split dev (design studies): every seed scores on the same held-out train images, the
    test split is not needed (it is removed here), and test and dev runs do not mix."""
    import shutil
    data = tmp_path / "data"
    shutil.copytree(small_cifar10, data)
    (data / "cifar-10-batches-py" / "test_batch").unlink()
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"dataset": "cifar10", "model": "proxy", "model_kwargs": {"width": 4}, "epochs": 1,
                                  "batch_size": 64, "train_size": 200, "val_size": 100, "threads": 1,
                                  "data_dir": str(data)}))
    results = tmp_path / "dev"
    args = ["--config", str(config), "--results", str(results), "--seeds", "0", "1", "--policy", "baseline"]
    assert table.main(args + ["--split", "dev", "--dev-size", "300"]) == 0
    for seed in (0, 1):
        ran = json.loads((results / f"baseline-s{seed}" / "config.json").read_text())["train"]
        assert (ran["val_size"], ran["split_seed"], ran["eval_test"]) == (300, table.DEV_SPLIT_SEED, False)
        final = json.loads((results / f"baseline-s{seed}" / "final.json").read_text())
        assert "top1" not in final and 0 <= final["val_acc"] <= 1
    text = (results / "table.md").read_text()
    assert "| top-1 (dev) |" in text and "dev split of 300 images held out of train" in text
    assert re.search(r"\| baseline \| 2 \| \d+\.\d\d ± \d+\.\d\d \|", text)
    capsys.readouterr()
    # The same folder as a test table: its runs scored on another split, refused in one line.
    assert table.main(args + ["--table-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scored on another split (eval_test False, this table's True)" in err
