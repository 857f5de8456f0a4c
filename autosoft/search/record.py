"""The Optuna study: the record of a search and the source of truth for `--resume`.

Everything here works on the study alone and needs no Ray: opening its storage,
enqueuing the known policies, requeuing trials a kill cut short, the rows of
trials.csv, the exported policy.json with its provenance, and the plots (the state of
each trial: `autosoft.search.trials`). Trials carry their policy (as a dict, `policy`, and as text, `policy_text`),
metrics, epochs, error, train loss per epoch (`train_loss`) and the Ray node they ran on
(`node`, `node_ip`) as user attributes, and their validation score per validated epoch as
intermediate values (one objective): what optuna-dashboard shows.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import sys
import warnings
from pathlib import Path

import torch

from autosoft import __version__, plots
from autosoft.errors import AutosoftError
from autosoft.files import atomic_write_text
from autosoft.policy import Policy
from autosoft.search.optuna_workarounds import set_trial_user_attr
from autosoft.search.ray_cluster import ray_version
from autosoft.search.trials import COUNTED, best_trial, complete_trials, state_counts, trial_state


# ---- the study --------------------------------------------------------------------------
def open_storage(url: str):
    import optuna
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as e:  # a bad URL or an unreachable server: one line
        raise AutosoftError(f"storage {url!r}: cannot open it ({type(e).__name__}: {str(e).splitlines()[0]}); "
                            "expected a database URL such as sqlite:///path/study.db") from None


def open_study(storage, study_name: str, modes: list[str], baselines: list[str]):
    """Create the study or load it; each known policy without a trial yet is enqueued (as a
    fixed policy), so they run first, also when a resumed search adds some."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name,
                                directions=["maximize" if m == "max" else "minimize" for m in modes],
                                load_if_exists=True)
    have = {t.user_attrs.get("fixed_policy") for t in study.get_trials(deepcopy=False)}
    for name in baselines:
        if name not in have:
            study.enqueue_trial({}, user_attrs={"fixed_policy": name})
    return study


def sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite:/// URL (sqlite:////abs/path or sqlite:///relative/path), else None."""
    prefix = "sqlite:///"
    return Path(url[len(prefix):].split("?")[0]) if url.startswith(prefix) and len(url) > len(prefix) else None


def finished_trials(url: str, study_name: str) -> int:
    """Trials that count towards the budget in that study; 0 when the study or its database is absent."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = sqlite_file(url)
    if db is not None and not db.exists():
        return 0  # opening it would create it
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    except KeyError:  # optuna 5.0.0: no study of that name
        return 0
    return sum(state_counts(study).values())


def delete_study(url: str, study_name: str) -> None:
    """Remove a study (only ever one holding no finished trial; see `settings.left_by_a_failed_start`)."""
    import optuna
    try:
        optuna.delete_study(study_name=study_name, storage=open_storage(url))
    except KeyError:
        pass


def requeue_interrupted(study) -> int:
    """Trials left RUNNING (a kill, Ctrl-C, the time limit) are marked and their policies enqueued again."""
    from optuna.trial import TrialState
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        fixed = t.user_attrs.get("fixed_policy")
        study.enqueue_trial(t.params, user_attrs={"fixed_policy": fixed} if fixed else None)
        set_trial_user_attr(study, t, "interrupted", True)
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        n += 1
    return n


# ---- trials.csv -------------------------------------------------------------------------
# The validation scores trials.csv shows beside the objective (trials measured before a score existed leave it empty).
VALIDATION_COLUMNS = ("val_acc", "val_robust_acc", "val_occlusion_acc", "val_shift_acc", "val_ece", "val_nll")


def trial_rows(study, metrics: list[str], pareto: set[int] = frozenset()) -> list[dict]:
    """One row per trial that has started: the rows of trials.csv."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = trial_state(t)
        if state == "waiting":
            continue
        m = t.user_attrs.get("metrics", {})
        row = {"number": t.number, "state": state, "policy": t.user_attrs.get("fixed_policy") or "searched"}
        for metric in metrics:
            row[metric] = m.get(metric)
        # whatever the objective, the clean, robust and calibration scores each trial measured
        row.update({k: m[k] for k in VALIDATION_COLUMNS if k in m and k not in metrics})
        row.update({"epochs": t.user_attrs.get("epochs", 0), "wall_time_s": t.user_attrs.get("wall_time_s"),
                    "node": t.user_attrs.get("node")})  # the Ray node id it ran on
        if len(metrics) > 1:
            row["pareto"] = t.number in pareto
        row["error"] = t.user_attrs.get("error")
        row.update({f"param_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    """The rows with the union of their columns, in first-seen order; None as an empty cell."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(columns))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return atomic_write_text(path, text.getvalue())


# ---- policy.json ------------------------------------------------------------------------
def versions() -> dict:
    import optuna
    return {"autosoft": __version__, "torch": torch.__version__, "ray": ray_version(),
            "optuna": optuna.__version__, "python": sys.version.split()[0]}


def export_policy(trial, path: Path, *, settings: dict, metrics: list[str], finished: int, out: Path,
                  extra: dict | None = None, known=None) -> Path:
    """The trial's policy as a policy file, with where it came from (`provenance`, plus `extra`).

    `trial` None: the confirmation candidate `known` (a `confirm.Candidate`: its name and
    policy; a baseline added on resume after the budget was spent) won without a proxy trial;
    it has no proxy scores.
    """
    if trial is None:
        fixed, number, scores, data = known.name, None, {}, dict(known.policy)
    else:
        fixed, number, data = trial.user_attrs.get("fixed_policy"), trial.number, dict(trial.user_attrs["policy"])
        scores = dict(zip(metrics, trial.values))
    data["name"] = fixed or f"search-{settings['dataset']}-trial{number}"
    data["provenance"] = {
        "dataset": settings["dataset"], "space": settings["space"], "proxy": settings["proxy"],
        "objectives": metrics, "scores": scores, "trial": number,
        "fixed_policy": fixed, "seed": settings["seed"], "trials_finished": finished,
        "budget": settings["budget"], "search_dir": str(out), "versions": versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    policy = Policy.from_dict(data, source=f"trial {number}" if trial is not None else fixed)
    # A rerun over a finished search exports the same policy again: the file is left as it is
    # (its "created" time too), not rewritten with only the time changed.
    try:
        old = json.loads(path.read_text())
        unchanged = old == {**policy.to_dict(),
                            "provenance": {**data["provenance"], "created": old["provenance"]["created"]}}
    except (OSError, ValueError, TypeError, KeyError):
        unchanged = False
    return path if unchanged else policy.save(path)


def write_outputs(study, out: Path, settings: dict, metrics: list[str], modes: list[str], *,
                  policy_file: str = "policy.json", extra: dict | None = None) -> dict:
    """The proxy's best policy (`policy_file`), trials.csv, the plots (and pareto/ with two
    objectives); returns what SearchResult needs."""
    complete = complete_trials(study)
    pareto = sorted(study.best_trials, key=lambda t: t.number) if complete and len(metrics) > 1 else []
    best = best_trial(pareto if len(metrics) > 1 else complete, modes[0])
    rows = trial_rows(study, metrics, {t.number for t in pareto})
    write_csv(rows, out / "trials.csv")

    counts = state_counts(study)
    finished = sum(counts.values())
    export = dict(settings=settings, metrics=metrics, finished=finished, out=out)
    policy_path = export_policy(best, out / policy_file, extra=extra, **export) if best is not None else None
    if pareto:
        (out / "pareto").mkdir(exist_ok=True)
        for t in pareto:
            export_policy(t, out / "pareto" / f"{candidate_name(t.number)}.json", **export)

    plot_trials(out, [r for r in rows if r["state"] in COUNTED], metrics, modes)
    return {"policy_path": policy_path, "best_trial": best.number if best else None,
            "best_scores": dict(zip(metrics, best.values)) if best else {}, "rows": rows,
            "pareto": [t.number for t in pareto], "counts": counts, "finished": finished}


def candidate_trials(study) -> list[dict]:
    """The complete trials as the confirmation stage reads them: number, first score, policy, fixed name."""
    return [{"number": t.number, "score": t.values[0], "policy": t.user_attrs["policy"],
             "fixed_policy": t.user_attrs.get("fixed_policy")} for t in complete_trials(study)]


def candidate_name(number: int, fixed_policy: str | None = None) -> str:
    """How a trial is named in the confirmation, the rungs and the exports: its baseline's name, or "trial-N"."""
    return fixed_policy or f"trial-{number}"


def trial_of(study, name: str):
    """The trial behind a confirmation candidate ("trial-N", or a baseline's name), or None."""
    for t in complete_trials(study):
        if name == candidate_name(t.number, t.user_attrs.get("fixed_policy")):
            return t
    return None


def plot_trials(out: Path, rows: list[dict], metrics: list[str], modes: list[str]) -> None:
    """search_history.png (and pareto_front.png with two objectives) from the finished rows."""
    if not rows:
        return
    # Stopped trials show their score when ASHA stopped them; failed ones have none.
    scores = [r[metrics[0]] if r["state"] != "failed" else None for r in rows]
    try:
        plots.search_history(scores, out / "search_history.png", objective_name=metrics[0],
                             maximize=modes[0] == "max", stopped=[r["state"] == "stopped" for r in rows])
        if len(metrics) > 1:
            done = [r for r in rows if r["state"] == "complete"]
            if done:
                plots.pareto_front([(r[metrics[0]], r[metrics[1]]) for r in done],
                                   [bool(r["pareto"]) for r in done], out / "pareto_front.png",
                                   names=(metrics[0], metrics[1]))
    except Exception as e:  # a plot must never cost the search its results (written above)
        warnings.warn(f"could not draw the search plots in {out}: {type(e).__name__}: {e}")
