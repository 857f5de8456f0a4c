"""Search spaces: load a built-in space or a space file, join "a+b", sample policies from it.

A space is a define-by-run function ``space(trial) -> dict`` (a policy in its JSON
form) in a file of `search_spaces/` or the user's own. A known policy (a built-in name or a
policy JSON file) may stand first in a join: "autoaugment-cifar10+soft" keeps that policy's
ops and searches only what the later parts add (the crop and the soft-target curve).
Nothing here needs Ray.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from autosoft.errors import AutosoftError
from autosoft.policy import BUILTIN_POLICIES, Policy, load_policy
from autosoft.search.optuna_workarounds import picklable_nsga2_sampler, quiet_experimental_warnings

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
SPACE_NAMES = ("autoaugment", "randaugment", "soft", "autoaugment+soft", "randaugment+soft")
# Parts after the first in "a+b" contribute only these keys (the soft part joins a space).
JOIN_KEYS = ("base", "soft_targets")


@dataclass(frozen=True)
class SearchSpace:
    """A define-by-run space: call it with an Optuna trial, get a policy dict.

    `parts` are the space functions of "a+b+...": the first gives the policy, the
    others replace its "base" and "soft_targets" (see `JOIN_KEYS`).
    """

    name: str
    parts: tuple[Callable[[Any], dict], ...]
    description: str

    def __call__(self, trial) -> dict:
        policy = dict(self._call(self.parts[0], trial))
        for part in self.parts[1:]:
            joined = self._call(part, trial)
            policy.update({k: joined[k] for k in JOIN_KEYS if k in joined})
        policy["name"] = self.name if len(self.parts) > 1 else policy.get("name", self.name)
        return _tidy(policy)

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}: {self.description})"

    def _call(self, part, trial) -> dict:
        """One part's policy dict; a user's function that raises or returns no dict is one line naming its file."""
        where = getattr(getattr(part, "__code__", None), "co_filename", None) or repr(part)
        try:
            result = part(trial)
        except AutosoftError:
            raise
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0]
            raise AutosoftError(f"space {self.name!r}: {where}: space(trial) raised {type(e).__name__}: {first}") \
                from None
        if not isinstance(result, dict):
            raise AutosoftError(f"space {self.name!r}: {where}: space(trial) returned {type(result).__name__}; "
                                "expected a dict (a policy in its JSON form)")
        return result


def _tidy(value):
    """Round floats to 6 decimals: Optuna's 0.1 grid gives 0.30000000000000004, which no one should read."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return value


def _load_module(path: Path, label: str):
    spec = importlib.util.spec_from_file_location(f"autosoft_space_{path.stem}_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # a user's file: say which one and why, in one line
        raise AutosoftError(f"space {label!r}: cannot load {path}: {type(e).__name__}: {e}") from None
    if not callable(getattr(module, "space", None)):
        raise AutosoftError(f"space {label!r}: {path} defines no function space(trial) -> dict")
    return module


def _is_fixed_policy(name: str) -> bool:
    """A built-in policy or a policy file; a space's name wins ("randaugment" is both)."""
    if name in SPACE_NAMES:
        return False
    return name in BUILTIN_POLICIES or (name.endswith(".json") and Path(name).is_file())


def _fixed_policy_part(name: str):
    """A known policy as a space's first part: every trial gets its ops unchanged."""
    data = load_policy(name).to_dict()  # a malformed file is one line naming what is wrong
    data.pop("provenance", None)  # where it came from is not part of what trains
    return SimpleNamespace(space=lambda trial: copy.deepcopy(data),
                           DESCRIPTION=f"the policy {name!r} with its ops fixed")


def _load_part(name: str):
    if name in SPACE_NAMES and "+" not in name:
        return _load_module(SPACES_DIR / f"{name}.py", name)
    path = Path(name)
    if path.suffix == ".py" and path.is_file():
        return _load_module(path, name)
    if path.suffix == ".json":  # a policy: load_space takes one only as the first part
        why = "a policy may stand only first in a join" if path.is_file() else "no such policy file"
        raise AutosoftError(f"space {name!r}: {why} (e.g. policy.json+soft: its ops fixed, the rest searched)")
    raise AutosoftError(f"unknown search space {name!r}; allowed: {', '.join(SPACE_NAMES)}, "
                        "a space file (.py), or several joined with '+' (a policy first, a built-in "
                        "name or a .json file, keeps its ops: autoaugment-cifar10+soft)")


def load_space(name_or_path: str | SearchSpace) -> SearchSpace:
    """A built-in space by name ("autoaugment+soft"), a space file, "file.py+soft", or a known
    policy joined with a searched part ("autoaugment-cifar10+soft", "policy.json+soft")."""
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    name = str(name_or_path)
    pieces = [name] if Path(name).is_file() else name.split("+")
    if _is_fixed_policy(pieces[0]):
        if len(pieces) == 1:
            raise AutosoftError(f"space {name!r} is a policy with nothing to search; join a searched "
                                f"part to it, e.g. {name}+soft (its ops fixed, the soft-target curve searched)")
        modules = [_fixed_policy_part(pieces[0])] + [_load_part(p) for p in pieces[1:]]
    else:
        modules = [_load_part(p) for p in pieces]
    first = modules[0]
    description = getattr(first, "DESCRIPTION", None) or (first.__doc__ or name).strip().splitlines()[0]
    if len(pieces) > 1:
        description += "; joined with " + " and ".join(map(repr, pieces[1:]))
    return SearchSpace(name, tuple(m.space for m in modules), description)


def space_id(space: str | SearchSpace) -> str:
    """How search.json names a space: a file by its absolute path, a built-in one by its name."""
    if isinstance(space, SearchSpace):
        return space.name
    return str(Path(space).resolve()) if Path(space).is_file() else str(space)


def describe_spaces() -> str:
    """The built-in spaces, one line each (`autosoft show spaces`)."""
    width = max(map(len, SPACE_NAMES))
    lines = []
    for name in SPACE_NAMES:
        space = load_space(name)
        hard = all(p.soft_targets is None for p in sample_policies(space, 2))
        lines.append(f"{name:<{width}}  {space.description}{'; hard labels' if hard else ''}")
    lines.append(f"(plain names keep hard labels; '+soft' joins the soft-target part; a policy joined "
                 f"first, e.g. autoaugment-cifar10+soft or policy.json+soft, keeps its ops and searches the "
                 f"rest. Copy a file from {SPACES_DIR} and pass its path to --space to edit one.)")
    return "\n".join(lines)


def sample_policies(space: str | SearchSpace, n: int, *, seed: int = 0) -> list:
    """`n` policies drawn uniformly at random from a space (no training): the random control."""
    import optuna

    space = load_space(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    policies = []
    for _ in range(n):
        trial = study.ask()
        data = space(trial)
        try:
            policies.append(Policy.from_dict(data, source=f"space {space.name!r}"))
        except AutosoftError as e:
            raise AutosoftError(f"space {space.name!r} produced an invalid policy at {trial.params}: {e}") from None
        study.tell(trial, 0.0)
    return policies


SAMPLERS = ("tpe", "random")


def make_sampler(n_objectives: int, budget: int, seed: int, kind: str = "tpe"):
    """How the search draws points of a space: TPE for one objective, NSGA-II for two; or
    uniformly at random ("random": the control a guided search must beat, same budget)."""
    import optuna
    if kind not in SAMPLERS:
        raise AutosoftError(f"unknown sampler {kind!r}; allowed: {', '.join(SAMPLERS)}")
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if n_objectives > 1:
        return picklable_nsga2_sampler(population_size=max(4, min(50, budget // 4)), seed=seed)
    with quiet_experimental_warnings():  # multivariate and group are "experimental" in Optuna; TPE is the point
        # group=True: conditional parameters (p_min, the SoftCrop strength) and the fixed baseline
        # trials (no parameters) would otherwise push multivariate TPE back to independent sampling.
        return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)
