"""experiments/table.py: a finished run counts for a row only if it trained that row's policy."""

import json
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
