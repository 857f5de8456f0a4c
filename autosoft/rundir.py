"""A run folder: config.json, policy.json, metrics.jsonl, checkpoint.pt, final.json and the plots.

`RunDir` says whether a folder can take a run (new, or this very run to resume), writes what
a run records and reads it back; `with_defaults` lets a config saved by an older autosoft
resume; `write_plots` draws a run's training curves and reliability diagram.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

from autosoft import __version__, plots
from autosoft.config import TrainConfig
from autosoft.errors import AutosoftError
from autosoft.files import atomic_path, atomic_write_json, atomic_write_text
from autosoft.policy import Policy, same_training


def environment_info(device: torch.device) -> dict:
    import torchvision
    info = {"autosoft": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class RunDir:
    """config.json, policy.json, metrics.jsonl, checkpoint.pt, final.json in one folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.policy = self.path / "policy.json"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoint = self.path / "checkpoint.pt"
        self.final = self.path / "final.json"
        self.test_split = self.path / "test_split.json"   # the images carved out of a folder as its test split

    def check(self, config: TrainConfig, policy: Policy) -> bool:
        """Whether this folder can take this run (it writes nothing): True when it holds this very
        run to resume; False when it is new, or left by a run that trained nothing (see
        `trained_nothing`), which this one replaces; else an error."""
        if self.final.exists():
            raise AutosoftError(f"{self.path} already holds a finished run ({self.final.name}); "
                                "choose another --out, or delete it to train again")
        if not self.config.exists():
            if self.path.exists() and any(self.path.iterdir()):
                raise AutosoftError(f"{self.path} exists and is not an autosoft run directory; choose another --out")
            return False
        if self.records(config, policy):
            return True
        if self.trained_nothing():  # e.g. a config.json cut short
            return False
        raise AutosoftError(f"{self.path} holds an unfinished run with a different config or policy; "
                            "choose another --out, or rerun with the same settings to resume")

    def records(self, config: TrainConfig, policy: Policy) -> bool:
        """Whether config.json records this very run: its train config and policy (provenance aside)."""
        try:
            saved = json.loads(self.config.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return (isinstance(saved, dict) and with_defaults(saved.get("train")) == config.to_dict()
                and same_training(saved.get("policy"), policy))

    def prepare(self, config: TrainConfig, policy: Policy, device: torch.device) -> dict | None:
        """Create the folder, or check it belongs to this run; returns the checkpoint to resume from."""
        if self.check(config, policy):
            if self.checkpoint.exists():
                return torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            return None
        self.path.mkdir(parents=True, exist_ok=True)
        record = {"train": config.to_dict(), "policy": policy.to_dict(), "environment": environment_info(device)}
        atomic_write_json(self.config, record)
        policy.save(self.policy)
        return None

    def trained_nothing(self) -> bool:
        """Only a config and a policy (and no epoch logged): what a run that failed before its first
        epoch leaves. Anything else (a checkpoint, a metrics line, weights, results) is the user's."""
        entries = [p for p in self.path.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))]
        ours = (self.config.name, self.policy.name, self.metrics.name, self.test_split.name)
        if any(p.name not in ours for p in entries):
            return False
        return not (self.metrics.exists() and self.metrics.read_text().strip())

    def save_checkpoint(self, state: dict) -> None:
        with atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def append_metrics(self, metrics: dict) -> None:
        with self.metrics.open("a") as f:
            f.write(json.dumps(metrics) + "\n")

    def history(self, up_to_epoch: int) -> list[dict]:
        """Metrics lines of epochs < up_to_epoch (a kill between the log and the checkpoint leaves extras)."""
        if not self.metrics.exists():
            return []
        rows = [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]
        return [r for r in rows if r["epoch"] < up_to_epoch]

    def rewrite_metrics(self, rows: list[dict]) -> None:
        atomic_write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in rows))


def with_defaults(saved) -> dict | None:
    """A saved train config with the fields added since it was written at their defaults, so
    that a run (or a search, `autosoft.search.settings`) of an older autosoft still resumes
    (a new field's default changes nothing)."""
    if not isinstance(saved, dict):
        return saved
    return {**TrainConfig().to_dict(), **saved}


def write_plots(folder: Path, history: list[dict], reliability: dict | None) -> None:
    """Training curves and the test reliability diagram, as PNGs a person can look at."""
    if history:
        plots.training_curves(history, folder / "training_curves.png")
    if reliability is not None:
        plots.reliability_diagram_from_bins(reliability, folder / "reliability.png", title="test set")
