"""The settings of a search, each checked here and only here: budget, time limit, objectives,
known baselines, the output folder and the `--resume` compatibility check (the proxy task:
`autosoft.search.proxy`).

>>> parse_time_limit("30m")
1800.0
>>> parse_objectives("acc,ece")
(['val_acc', 'val_ece'], ['max', 'min'])
>>> parse_objectives("robust")
(['val_robust_acc'], ['max'])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from autosoft.errors import AutosoftError
from autosoft.files import atomic_write_json
from autosoft.rundir import with_defaults
from autosoft.search import record
from autosoft.search import proxy as proxy_rules
from autosoft.search.proxy import CONFIRM_DEFAULTS, EARLY_STOPPING

# Known policies run first and are confirmed beside the searched ones: the fixed policies a user
# would otherwise pick, so an exported searched policy has beaten each of them at the target.
# Spaces without soft targets get the hard-label ones only, to keep that comparison clean.
BASELINES_HARD = ("baseline", "autoaugment-cifar10", "randaugment", "trivialaugment")
BASELINES_SOFT = BASELINES_HARD + ("softaug",)
# --objective names -> (metric the trainer reports, direction). "robust" (the default) is clean
# validation accuracy with occlusion and shift accuracy (autosoft.metrics.ROBUST_WEIGHTS): with
# clean accuracy alone, colour-only policies win and lose robustness (issue #24's records).
OBJECTIVES = {"robust": ("val_robust_acc", "max"), "acc": ("val_acc", "max"), "ece": ("val_ece", "min"),
              "nll": ("val_nll", "min"), "occlusion": ("val_occlusion_acc", "max"), "shift": ("val_shift_acc", "max")}
DEFAULT_OBJECTIVE = "robust"
# Settings that must match for --resume (budget, time limit, resources and the number of
# confirmed policies and seeds may change; baselines may be added).
RESUME_KEYS = ("dataset", "space", "objectives", "proxy", "seed", "baselines", "target", "sampler", "confirmation",
               "early_stopping")
# Proxy keys a resume may change: threads and the data folder change speed and location, not the search.
PROXY_FREE_KEYS = ("threads", "data_dir", "download")


def check_budget(budget) -> int:
    """The number of trials: an integer >= 1."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise AutosoftError(f"budget: expected an integer >= 1 (the number of trials), got {budget!r}")
    return budget


def parse_time_limit(text: str | float | None) -> float | None:
    """"90", "90s", "30m", "1.5h" -> seconds; a number is taken as seconds already."""
    if text is None or isinstance(text, (int, float)):
        return text
    units = {"s": 1, "m": 60, "h": 3600}
    value, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise AutosoftError(f"time limit: expected a positive duration like 600, 30m or 1.5h, got {text!r}")
    return seconds


def check_reuse_folders(folders) -> list[Path]:
    """--reuse-confirmation: each must be a search's output folder (it holds search.json)."""
    checked = []
    for folder in [folders] if isinstance(folders, (str, Path)) else folders or ():
        path = Path(folder)
        if not (path / "search.json").is_file():
            raise AutosoftError(f"--reuse-confirmation {folder}: not a search's output folder (no search.json there); "
                                "name the --out of an earlier search")
        checked.append(path)
    return checked


def parse_objectives(objectives: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """("acc", "ece") or "acc,ece" -> (["val_acc", "val_ece"], ["max", "min"])."""
    names = objectives.split(",") if isinstance(objectives, str) else list(objectives)
    metrics, modes = [], []
    for raw in names:
        key = raw.strip().removeprefix("val_")
        if key not in OBJECTIVES:
            raise AutosoftError(f"unknown objective {raw.strip()!r}; allowed: {', '.join(OBJECTIVES)} "
                                "(one, or two joined by a comma)")
        metrics.append(OBJECTIVES[key][0])
        modes.append(OBJECTIVES[key][1])
    if not 1 <= len(metrics) <= 2 or len(set(metrics)) != len(metrics):
        raise AutosoftError(f"objectives: expected one or two different names, got {','.join(names)!r}")
    return metrics, modes


def choose_baselines(enqueue_baselines: bool | Sequence[str], samples: list) -> list[str]:
    """The known policies to run first: `True` picks them by whether the space's `samples` are soft."""
    if enqueue_baselines is True:
        soft = any(p.soft_targets is not None for p in samples)
        return list(BASELINES_SOFT if soft else BASELINES_HARD)
    return list(enqueue_baselines or [])


def confirmation_plan(top_k: int | None, seeds: int | None, fidelity: float, *, on_gpu: bool,
                      max_seeds: int | None = None, time_limit_s: str | float | None = None) -> dict:
    """How many searched policies are confirmed, with how many seeds to start the race and at
    most, at what share of the target's epochs, and the race's time limit (no new round after
    it); None takes the device's default (`autosoft.search.proxy.CONFIRM_DEFAULTS`)."""
    default_k, default_s, default_cap = CONFIRM_DEFAULTS["gpu" if on_gpu else "cpu"]
    top_k = default_k if top_k is None else top_k
    seeds = default_s if seeds is None else seeds
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise AutosoftError(f"confirm: expected an integer >= 0 (searched policies to retrain; 0 skips), got {top_k!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise AutosoftError(f"confirm seeds: expected an integer >= 1, got {seeds!r}")
    max_seeds = max(default_cap, seeds) if max_seeds is None else max_seeds
    if isinstance(max_seeds, bool) or not isinstance(max_seeds, int) or max_seeds < seeds:
        raise AutosoftError(f"confirm max seeds: expected an integer >= the starting seeds ({seeds}), "
                            f"got {max_seeds!r}")
    if isinstance(fidelity, bool) or not isinstance(fidelity, (int, float)) or not 0 < fidelity <= 1:
        raise AutosoftError(f"confirm fidelity: expected a fraction of the target's epochs in (0, 1], got {fidelity!r}")
    try:
        limit = parse_time_limit(time_limit_s)
    except AutosoftError as e:
        raise AutosoftError(f"confirm {e}") from None
    return {"top_k": top_k, "seeds": seeds, "max_seeds": max_seeds, "fidelity": float(fidelity),
            "time_limit_s": limit}


def check_rungs(rungs, reduction_factor=None) -> dict | None:
    """--rungs "1/16,1/4": successive halving over train images, the trials at the first share of
    the target's cost and the best 1/`reduction_factor` of each rung retrained at the next;
    None or "" turns it off. Returns {"costs": the later rungs' shares, "trial_cost": the
    first, "reduction_factor": the factor} or None."""
    if rungs is None or rungs == "" or rungs == ():
        if reduction_factor is not None:
            raise AutosoftError("--reduction-factor: sets how many trials successive halving promotes; "
                                "it needs --rungs (such as --rungs 1/16,1/4)")
        return None
    texts = [t.strip() for t in rungs.split(",")] if isinstance(rungs, str) else list(rungs)
    costs = []
    for text in texts:
        try:
            costs.append(proxy_rules.check_cost(text))
        except AutosoftError:
            raise AutosoftError(f"--rungs {rungs!r}: {text!r} is not a share of one target run; expected "
                                "two or more increasing shares in (0, 1] joined by commas, such as 1/16,1/4") from None
    if len(costs) < 2 or any(b <= a for a, b in zip(costs, costs[1:])):
        raise AutosoftError(f"--rungs {rungs!r}: expected two or more increasing shares of one target run in "
                            "(0, 1], such as 1/16,1/4 (the trials at the first, the best promoted to the next)")
    factor = proxy_rules.REDUCTION_FACTOR if reduction_factor is None else reduction_factor
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise AutosoftError(f"--reduction-factor: expected an integer >= 2 (the best 1/N of a rung are "
                            f"promoted), got {factor!r}")
    return {"trial_cost": costs[0], "costs": costs[1:], "reduction_factor": factor}


def check_early_stopping(kind: str | None) -> str:
    """"off" (every trial runs its whole schedule) or "asha"; None takes the default."""
    kind = EARLY_STOPPING[0] if kind is None else kind
    if kind not in EARLY_STOPPING:
        raise AutosoftError(f"unknown early stopping {kind!r}; allowed: {', '.join(EARLY_STOPPING)}")
    return kind


def output_folder(out_dir, dataset: str, *, resume: bool) -> Path:
    """The search folder (default runs/search-DATASET); an existing one only with `resume`."""
    out = Path(out_dir if out_dir is not None else f"runs/search-{dataset}").resolve()
    if out.exists() and not resume and not left_by_a_failed_start(out):
        raise _exists(out)
    return out


def _exists(out: Path) -> AutosoftError:
    return AutosoftError(f"{out} already exists; pass --resume to continue that search, or choose another --out")


# What a search that stopped before its first trial finished may leave in its folder.
START_LEFTOVERS = ("search.json", "study.db", "ray")


def _saved_settings(out: Path) -> dict | None:
    try:
        saved = json.loads((out / "search.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return saved if isinstance(saved, dict) else None


def _study_url(out: Path, saved: dict) -> str | None:
    """Where the study of the search in `out` lives; None: in a sqlite file that does not exist."""
    url = saved.get("storage") or f"sqlite:///{out / 'study.db'}"
    db = record.sqlite_file(url)
    return None if db is not None and not db.exists() else url


def left_by_a_failed_start(out: Path) -> bool:
    """A search folder that holds no result: its study has no finished trial (complete, stopped
    or failed) and the folder nothing but its settings, study and Ray's log of the start. Another
    search may take it over; any finished trial keeps it for `--resume` only."""
    saved = _saved_settings(out)
    if saved is None or not isinstance(saved.get("study_name"), str):
        return False
    if any(p.name not in START_LEFTOVERS for p in out.iterdir()):
        return False
    url = _study_url(out, saved)
    if url is None:  # no study.db: a start that failed before opening it, unless Ray ran (then it was lost)
        return not (out / "ray").exists()
    try:
        return record.finished_trials(url, saved["study_name"]) == 0
    except AutosoftError:  # its database cannot be opened: not ours to judge, so keep it
        return False


def save_settings(out: Path, *, resume: bool, fresh: dict) -> dict:
    """Write search.json for a new search, or check a resumed one matches it; returns the settings in force.

    A resume keeps the saved settings (its study name among them) but takes the new budget, the
    proxy, target and confirmation settings (equal but for threads, data folder, K and seeds),
    the rungs (added, changed or dropped: they only choose what the confirmation retrains)
    and the baselines (the saved ones and perhaps more: added ones run as trials while the
    budget lasts, and are confirmed).
    """
    path = out / "search.json"
    if out.exists():
        if resume:
            if not path.exists():
                raise AutosoftError(f"{out} is not a search folder (no search.json); choose another --out")
            saved = json.loads(path.read_text())
            differs = [key for key in RESUME_KEYS + (("storage",) if fresh["storage"] else ())
                       if _comparable(key, saved.get(key)) != _comparable(key, fresh[key])
                       and not (key == "baselines" and _adds_baselines(saved.get(key), fresh[key]))]
            if not differs:
                if not saved.get("storage") and not (out / "study.db").exists() and not left_by_a_failed_start(out):
                    raise AutosoftError(f"--resume: {out / 'study.db'} (the record of that search) is missing; "
                                        "restore it, or start a new search in another --out")
                settings = {**saved, "budget": fresh["budget"], "proxy": fresh["proxy"], "target": fresh["target"],
                            "confirmation": fresh["confirmation"], "baselines": fresh["baselines"],
                            "rungs": fresh.get("rungs")}
                atomic_write_json(path, settings)
                return settings
            if not left_by_a_failed_start(out):
                key = differs[0]
                raise AutosoftError(f"--resume: {key} differs from the search in {out} "
                                    f"({_difference(key, saved.get(key), fresh[key])}); rerun with the same settings"
                                    + (f" (that proxy: {'; '.join(saved['proxy_rules'])})"
                                       if key == "proxy" and saved.get("proxy_rules") else ""))
        elif not left_by_a_failed_start(out):
            raise _exists(out)
        _discard_study(out)  # left by a search that finished no trial: this one takes its place
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, fresh)
    return fresh


def _adds_baselines(saved, fresh) -> bool:
    """A search saved with baselines, resumed with those and more (a newer default list)."""
    return isinstance(saved, list) and bool(saved) and set(saved) <= set(fresh)


def _discard_study(out: Path) -> None:
    """The study of a search that finished no trial: only its queue of trials to run goes."""
    saved = _saved_settings(out) or {}
    url = _study_url(out, saved)
    if url is not None and isinstance(saved.get("study_name"), str):
        record.delete_study(url, saved["study_name"])


def _difference(key: str, saved, fresh) -> str:
    """What differs, in words: the differing fields of two configs, else the two values."""
    a, b = _comparable(key, saved), _comparable(key, fresh)
    if isinstance(a, dict) and isinstance(b, dict):
        fields = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        if fields:
            return ", ".join(f"{k} {a.get(k)!r} there, {b.get(k)!r} now" for k in fields[:4]) + \
                (f", and {len(fields) - 4} more" if len(fields) > 4 else "")
    return f"{saved!r} there, {fresh!r} now"


def _comparable(key: str, value):
    if key in ("proxy", "target") and isinstance(value, dict):
        # with_defaults: a search saved before a field existed still resumes
        return {k: v for k, v in with_defaults(value).items() if k not in PROXY_FREE_KEYS}
    if key == "confirmation" and isinstance(value, dict):  # more policies or seeds only add runs
        return {"config": _comparable("proxy", value.get("config")), "fidelity": value.get("fidelity")}
    return value
