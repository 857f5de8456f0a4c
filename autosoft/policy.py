"""Augmentation policies as plain, versioned data.

A policy says which ops run on each image, with what probability and magnitude,
and how much each op softens the training target. It round-trips through JSON
(``"version": 1``) and is validated field by field: an error names the field
and what is allowed. A policy file is only ever data: it is parsed with
``json``, never unpickled or evaluated.

>>> policy = load_policy("softaug")
>>> policy.kind, [entry.op for entry in policy.base]
('none', ['SoftCrop', 'FlipLR'])
>>> Policy.from_json(policy.to_json()) == policy
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosoft.errors import AutosoftError
from autosoft.files import atomic_write_text
from autosoft.ops import OPS
from autosoft.soft_targets import MODES as SOFT_MODES

SCHEMA_VERSION = 1
KINDS = ("none", "subpolicies", "randaugment", "trivialaugment")
RANGES = ("standard", "wide")

# The op lists torchvision's RandAugment and TrivialAugmentWide draw from.
RANDAUGMENT_OPS = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
    "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)
# The 16 ops of the AutoAugment paper's search space.
AUTOAUGMENT_OPS = (
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "AutoContrast", "Invert",
    "Equalize", "Solarize", "Posterize", "Contrast", "Color", "Brightness", "Sharpness",
    "Cutout", "SamplePairing",
)


@dataclass(frozen=True)
class OpEntry:
    """One op applied with `probability` at `magnitude` (both in [0, 1])."""

    op: str
    probability: float
    magnitude: float

    def to_list(self) -> list:
        return [self.op, self.probability, self.magnitude]

    def __repr__(self) -> str:
        return f"({self.op}, p={self.probability:g}, m={self.magnitude:g})"


@dataclass(frozen=True)
class RandAugmentSpec:
    """N ops drawn uniformly per image, all at magnitude M (plus Gaussian noise)."""

    num_ops: int = 2
    magnitude: float = 0.3
    magnitude_std: float = 0.0
    ops: tuple[str, ...] = RANDAUGMENT_OPS


@dataclass(frozen=True)
class TrivialAugmentSpec:
    """One op per image, drawn uniformly, at a magnitude drawn uniformly in [0, 1]."""

    ops: tuple[str, ...] = RANDAUGMENT_OPS


@dataclass(frozen=True)
class SoftTargets:
    """How severity softens targets: p = 1 - (1 - p_min) * severity ** power.

    `p_min=None` means chance (1 / number of classes). `sensitivity` maps an op
    name to how much of its raw severity counts; unlisted ops count 0 (hard label).
    """

    mode: str = "target"
    p_min: float | None = None
    power: float = 2.0
    sensitivity: dict[str, float] = field(default_factory=dict)

    def __hash__(self) -> int:  # dict field: hash by content so policies stay hashable
        return hash((self.mode, self.p_min, self.power, tuple(sorted(self.sensitivity.items()))))


@dataclass(frozen=True)
class Policy:
    kind: str = "none"
    ranges: str = "standard"
    base: tuple[OpEntry, ...] = ()
    subpolicies: tuple[tuple[OpEntry, ...], ...] = ()
    randaugment: RandAugmentSpec | None = None
    trivialaugment: TrivialAugmentSpec | None = None
    soft_targets: SoftTargets | None = None
    name: str | None = None
    provenance: dict | None = field(default=None, compare=False, hash=False)

    # ---- JSON form -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": SCHEMA_VERSION}
        if self.name:
            d["name"] = self.name
        d["kind"] = self.kind
        d["ranges"] = self.ranges
        d["base"] = [e.to_list() for e in self.base]
        if self.kind == "subpolicies":
            d["subpolicies"] = [[e.to_list() for e in sub] for sub in self.subpolicies]
        elif self.kind == "randaugment":
            ra = self.randaugment
            d["randaugment"] = {"num_ops": ra.num_ops, "magnitude": ra.magnitude,
                                "magnitude_std": ra.magnitude_std, "ops": list(ra.ops)}
        elif self.kind == "trivialaugment":
            d["trivialaugment"] = {"ops": list(self.trivialaugment.ops)}
        if self.soft_targets is not None:
            st = self.soft_targets
            d["soft_targets"] = {"mode": st.mode, "p_min": st.p_min, "power": st.power,
                                 "sensitivity": dict(st.sensitivity)}
        if self.provenance:
            d["provenance"] = self.provenance
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> Path:
        """Write the JSON form atomically (a crash never leaves half a file)."""
        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def from_json(cls, text: str, *, source: str = "policy") -> Policy:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise AutosoftError(f"{source}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "policy") -> Policy:
        return _parse_policy(_Field(source, data))

    # ---- reading ---------------------------------------------------------
    def uses_soft_targets(self) -> bool:
        st = self.soft_targets
        return st is not None and any(v > 0 for v in st.sensitivity.values())

    def ops_used(self) -> list[str]:
        names = [e.op for e in self.base]
        names += [e.op for sub in self.subpolicies for e in sub]
        for spec in (self.randaugment, self.trivialaugment):
            if spec is not None:
                names += list(spec.ops)
        return list(dict.fromkeys(names))

    def __repr__(self) -> str:
        lines = [f"Policy({self.name or 'unnamed'}: kind={self.kind}, ranges={self.ranges}"]
        lines.append("  base: " + (", ".join(map(repr, self.base)) or "-"))
        if self.kind == "subpolicies":
            lines.append(f"  {len(self.subpolicies)} sub-policies, one drawn per image:")
            lines += [f"    {i:2d}: " + " -> ".join(map(repr, sub)) for i, sub in enumerate(self.subpolicies)]
        elif self.kind == "randaugment":
            ra = self.randaugment
            lines.append(f"  randaugment: N={ra.num_ops}, M={ra.magnitude:g} (std {ra.magnitude_std:g}) over {len(ra.ops)} ops")
        elif self.kind == "trivialaugment":
            lines.append(f"  trivialaugment: 1 op of {len(self.trivialaugment.ops)}, magnitude ~ U[0, 1]")
        st = self.soft_targets
        if st is None:
            lines.append("  targets: hard labels")
        else:
            p_min = "chance" if st.p_min is None else f"{st.p_min:g}"
            sens = ", ".join(f"{k}={v:g}" for k, v in st.sensitivity.items()) or "none"
            lines.append(f"  soft targets: mode={st.mode}, p_min={p_min}, power={st.power:g}, sensitivity: {sens}")
        return "\n".join(lines) + ")"


# ---- validation ----------------------------------------------------------
class _Field:
    """A value with the path it came from, so errors can name the field."""

    def __init__(self, source: str, value: Any, path: str = ""):
        self.source, self.value, self.path = source, value, path

    def where(self) -> str:
        return f"{self.source}: {self.path}" if self.path else self.source

    def fail(self, allowed: str) -> AutosoftError:
        return AutosoftError(f"{self.where()}: expected {allowed}, got {self.value!r}")

    def child(self, key: str | int) -> _Field:
        sub = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.path else key)
        return _Field(self.source, self.value[key], self.path + sub)

    def obj(self, allowed_keys: tuple[str, ...]) -> dict:
        if not isinstance(self.value, dict):
            raise self.fail("a JSON object")
        unknown = sorted(set(self.value) - set(allowed_keys))
        if unknown:
            raise AutosoftError(f"{self.where()}: unknown field {unknown[0]!r}; allowed: {', '.join(allowed_keys)}")
        return self.value

    def items(self) -> list[_Field]:
        if not isinstance(self.value, list):
            raise self.fail("a JSON list")
        return [self.child(i) for i in range(len(self.value))]

    def number(self, lo: float, hi: float | None = None) -> float:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo \
                or (hi is not None and v > hi):
            raise self.fail(f"a number in [{lo:g}, {hi:g}]" if hi is not None else f"a number >= {lo:g}")
        return float(v)

    def integer(self, lo: int, hi: int) -> int:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(f"an integer in [{lo}, {hi}]")
        return v

    def choice(self, allowed: tuple[str, ...]) -> str:
        if self.value not in allowed:
            raise self.fail("one of " + ", ".join(allowed))
        return self.value

    def op_name(self) -> str:
        if self.value not in OPS:
            raise AutosoftError(f"{self.where()}: unknown op {self.value!r}; allowed: {', '.join(OPS)}")
        return self.value


def _opt(f: _Field, key: str) -> _Field | None:
    return f.child(key) if key in f.value else None


def _parse_entry(f: _Field) -> OpEntry:
    items = f.items()
    if len(items) != 3:
        raise f.fail("[op, probability, magnitude]")
    return OpEntry(items[0].op_name(), items[1].number(0, 1), items[2].number(0, 1))


def _parse_ops(f: _Field) -> tuple[str, ...]:
    names = tuple(item.op_name() for item in f.items())
    if not names:
        raise f.fail("a non-empty list of op names")
    return names


def _parse_policy(root: _Field) -> Policy:
    keys = ("version", "name", "kind", "ranges", "base", "subpolicies", "randaugment",
            "trivialaugment", "soft_targets", "provenance")
    d = root.obj(keys)
    if "version" not in d:
        raise AutosoftError(f"{root.where()}: missing field 'version'; allowed: {SCHEMA_VERSION}")
    if d["version"] != SCHEMA_VERSION or isinstance(d["version"], bool):
        raise AutosoftError(f"{root.where()}: version: unsupported version {d['version']!r}; allowed: {SCHEMA_VERSION}")
    kind = root.child("kind").choice(KINDS) if "kind" in d else "none"
    for section in ("subpolicies", "randaugment", "trivialaugment"):
        if section in d and section != kind:
            raise AutosoftError(f"{root.where()}: {section}: only allowed when kind is {section!r} (kind is {kind!r})")
    if kind == "subpolicies" and "subpolicies" not in d:  # the other kinds have defaults
        raise AutosoftError(f"{root.where()}: kind 'subpolicies' needs a 'subpolicies' list")

    name = d.get("name")
    if name is not None and not isinstance(name, str):
        raise root.child("name").fail("a string")
    ranges = root.child("ranges").choice(RANGES) if "ranges" in d else "standard"
    base = tuple(_parse_entry(e) for e in root.child("base").items()) if "base" in d else ()

    subpolicies: tuple = ()
    if kind == "subpolicies":
        subs = root.child("subpolicies").items()
        if not subs:
            raise root.child("subpolicies").fail("a non-empty list of sub-policies")
        subpolicies = tuple(tuple(_parse_entry(e) for e in sub.items()) for sub in subs)

    randaugment = None
    if kind == "randaugment":
        ra = _opt(root, "randaugment")
        if ra is None:
            randaugment = RandAugmentSpec()
        else:
            ra.obj(("num_ops", "magnitude", "magnitude_std", "ops"))
            default = RandAugmentSpec()
            randaugment = RandAugmentSpec(
                num_ops=ra.child("num_ops").integer(0, 16) if "num_ops" in ra.value else default.num_ops,
                magnitude=ra.child("magnitude").number(0, 1) if "magnitude" in ra.value else default.magnitude,
                magnitude_std=ra.child("magnitude_std").number(0, 1) if "magnitude_std" in ra.value else 0.0,
                ops=_parse_ops(ra.child("ops")) if "ops" in ra.value else default.ops,
            )

    trivialaugment = None
    if kind == "trivialaugment":
        ta = _opt(root, "trivialaugment")
        if ta is None:
            trivialaugment = TrivialAugmentSpec()
        else:
            ta.obj(("ops",))
            trivialaugment = TrivialAugmentSpec(
                ops=_parse_ops(ta.child("ops")) if "ops" in ta.value else RANDAUGMENT_OPS)

    soft = None
    if d.get("soft_targets") is not None:
        st = root.child("soft_targets")
        st.obj(("mode", "p_min", "power", "sensitivity"))
        sens = {}
        if "sensitivity" in st.value:
            sf = st.child("sensitivity")
            sf.obj(tuple(OPS))
            sens = {op: sf.child(op).number(0, 1) for op in sf.value}
        p_min = None
        if st.value.get("p_min") not in (None, "chance"):
            p_min = st.child("p_min").number(0, 1)
        soft = SoftTargets(
            mode=st.child("mode").choice(SOFT_MODES) if "mode" in st.value else "target",
            p_min=p_min,
            power=st.child("power").number(0.01, 100) if "power" in st.value else 2.0,
            sensitivity=sens,
        )

    provenance = d.get("provenance")
    if provenance is not None and not isinstance(provenance, dict):
        raise root.child("provenance").fail("a JSON object")
    return Policy(kind=kind, ranges=ranges, base=base, subpolicies=subpolicies, randaugment=randaugment,
                  trivialaugment=trivialaugment, soft_targets=soft, name=name, provenance=provenance)


# ---- built-in policies ---------------------------------------------------
_CROP_FLIP = [["PadCrop", 1.0, 0.5], ["FlipLR", 0.5, 1.0]]  # pad 4 px on 32 px + horizontal flip


def _aa_bin(b: int | None) -> float:
    """AutoAugment's 10 magnitude bins (0..9) on our [0, 1] scale; None = magnitude-free op."""
    return 1.0 if b is None else round(b / 9, 4)


# The published AutoAugment CIFAR-10 policy, as torchvision lists it (op, probability, bin).
_AUTOAUGMENT_CIFAR10 = [
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)), (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)), (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)), (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)), (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)), (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)), (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
]

BUILTIN_POLICIES: dict[str, dict] = {
    "none": {"version": 1, "name": "none", "kind": "none", "base": []},
    "baseline": {"version": 1, "name": "baseline", "kind": "none", "base": _CROP_FLIP},
    "autoaugment-cifar10": {
        "version": 1, "name": "autoaugment-cifar10", "kind": "subpolicies", "base": _CROP_FLIP,
        "subpolicies": [[[op, p, _aa_bin(b)] for op, p, b in sub] for sub in _AUTOAUGMENT_CIFAR10],
    },
    # N=2, M=9 on torchvision's 31-bin scale (9 / 30 = 0.3).
    "randaugment": {"version": 1, "name": "randaugment", "kind": "randaugment", "base": _CROP_FLIP,
                    "randaugment": {"num_ops": 2, "magnitude": 0.3}},
    "trivialaugment": {"version": 1, "name": "trivialaugment", "kind": "trivialaugment", "ranges": "wide",
                       "base": _CROP_FLIP},
    # The paper's soft crop (sigma 12 px on 32 px) with p_min = chance, k = 2, target & weight
    # as in the authors' training code; every other op keeps hard labels.
    "softaug": {"version": 1, "name": "softaug", "kind": "none",
                "base": [["SoftCrop", 1.0, 0.75], ["FlipLR", 0.5, 1.0]],
                "soft_targets": {"mode": "both", "p_min": None, "power": 2.0, "sensitivity": {"SoftCrop": 1.0}}},
}


def same_training(recorded: Any, policy: Policy) -> bool:
    """Whether a recorded policy (the dict a run folder keeps) trains as `policy` does:
    provenance aside, which a re-export rewrites (a resumed search writes policy.json again)."""
    try:
        return Policy.from_dict(recorded) == policy
    except AutosoftError:
        return False


def load_policy(name_or_path: str | Path | Policy) -> Policy:
    """A built-in policy by name, or a policy JSON file by path.

    >>> load_policy("randaugment").randaugment.num_ops
    2
    """
    if isinstance(name_or_path, Policy):
        return name_or_path
    key = str(name_or_path)
    if key in BUILTIN_POLICIES:
        return Policy.from_dict(BUILTIN_POLICIES[key], source=key)
    path = Path(key)
    if not path.is_file():
        hint = "" if key.endswith(".json") else f"; built-in policies: {', '.join(BUILTIN_POLICIES)}"
        raise AutosoftError(f"policy {key!r} is neither a built-in name nor an existing file{hint}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise AutosoftError(f"{path}: cannot read policy file ({e})") from None
    return Policy.from_json(text, source=str(path))
