"""Bit-identity check of the augmentation engine: one SHA-256 per (policy, batch size).

For each policy and batch size, the first 4,096 images of CIFAR-10's data_batch_1
(seeded synthetic images when the data is missing) go through `PolicyAugment` in
batches of that size, driven by one generator seeded by (policy, batch size). The
digest covers every output byte: images, targets, weights and severity. An
overall digest covers all lines. Refactors of the engine must leave every line
unchanged; the digests of the engine before the issue #9 refactor are kept in
engine_digest.json beside this script.

    python experiments/engine_digest.py            # print the digests
    python experiments/engine_digest.py --check    # and compare with engine_digest.json (exit 1 on change)
    python experiments/engine_digest.py --write    # record them in engine_digest.json

Policies: the built-in ones, plus two made for this check: "warps+shifts", whose
sub-policies mix Shear/Rotate with Translate/PadCrop/SoftCrop/Cutout at
sensitivities > 0 (warps spanning chunks, `lost` computed for every lossy op),
and "all-ops-wide", RandAugment over every op with wide ranges and fill 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from autosoft.augment import PolicyAugment  # noqa: E402
from autosoft.ops import OP_NAMES  # noqa: E402
from autosoft.policy import BUILTIN_POLICIES, Policy  # noqa: E402

N_IMAGES = 4096
BATCH_SIZES = (256, 600, 2048)
RECORD = Path(__file__).with_suffix(".json")

WARPS_SHIFTS = {
    "version": 1, "name": "warps+shifts", "kind": "subpolicies",
    "subpolicies": [
        [["ShearX", 0.9, 0.7], ["TranslateY", 0.6, 0.5]],
        [["Rotate", 0.8, 0.9], ["PadCrop", 0.7, 0.5]],
        [["ShearY", 0.9, 0.4], ["Rotate", 0.5, 0.3]],
        [["TranslateX", 0.8, 0.6], ["ShearX", 0.6, 0.2]],
        [["SoftCrop", 0.9, 0.75], ["Cutout", 0.5, 0.5]],
        [["Rotate", 0.7, 1.0], ["Brightness", 0.6, 0.4]],
    ],
    "soft_targets": {"mode": "both", "p_min": 0.1, "power": 2.0,
                     "sensitivity": {"ShearX": 1.0, "ShearY": 0.5, "Rotate": 0.8, "TranslateX": 1.0,
                                     "TranslateY": 1.0, "PadCrop": 1.0, "SoftCrop": 1.0, "Cutout": 0.7,
                                     "Brightness": 0.3}},
}
ALL_OPS_WIDE = {
    "version": 1, "name": "all-ops-wide", "kind": "randaugment", "ranges": "wide",
    "randaugment": {"num_ops": 2, "magnitude": 0.6, "magnitude_std": 0.3, "ops": OP_NAMES},
    "soft_targets": {"mode": "target", "sensitivity": {"Rotate": 1.0, "SoftCrop": 1.0, "Contrast": 0.5}},
}


def policies():
    out = [(name, name, {}) for name in BUILTIN_POLICIES]
    out.append(("warps+shifts", Policy.from_dict(WARPS_SHIFTS), {}))
    out.append(("all-ops-wide", Policy.from_dict(ALL_OPS_WIDE), {"fill": 0}))
    return out


def load_images() -> tuple[torch.Tensor, torch.Tensor, str]:
    root = Path(os.environ.get("AUTOSOFT_DATA", Path.home() / ".cache" / "autosoft" / "data"))
    path = root / "cifar-10-batches-py" / "data_batch_1"
    if path.exists():
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")
        images = torch.from_numpy(d["data"][:N_IMAGES]).view(-1, 3, 32, 32).contiguous()
        return images, torch.tensor(d["labels"][:N_IMAGES]), "cifar10"
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N_IMAGES, 3, 32, 32), dtype=torch.uint8, generator=g)
    return images, torch.randint(0, 10, (N_IMAGES,), generator=g), "synthetic"


def digest(augment: PolicyAugment, images, labels, batch_size: int, seed: int) -> str:
    h = hashlib.sha256()
    g = torch.Generator().manual_seed(seed)
    for start in range(0, len(images), batch_size):
        out = augment(images[start:start + batch_size], labels[start:start + batch_size], generator=g)
        for t in out:
            h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help=f"compare with {RECORD.name}")
    p.add_argument("--write", action="store_true", help=f"record the digests in {RECORD.name}")
    args = p.parse_args()
    torch.set_num_threads(1)
    images, labels, source = load_images()
    lines = {}
    for k, (name, policy, kwargs) in enumerate(policies()):
        augment = PolicyAugment(policy, 10, **kwargs)
        for batch_size in BATCH_SIZES:
            key = f"{name}/{batch_size}"
            lines[key] = digest(augment, images, labels, batch_size, seed=1000 * k + batch_size)
            print(f"{key:28s} {lines[key]}")
    overall = hashlib.sha256("".join(f"{k}={v}\n" for k, v in lines.items()).encode()).hexdigest()
    print(f"{'overall (' + source + ')':28s} {overall}")
    record = {"source": source, "overall": overall, "lines": lines}
    if args.write:
        RECORD.write_text(json.dumps(record, indent=1) + "\n")
    if args.check:
        want = json.loads(RECORD.read_text())
        if want["source"] != source:
            print(f"recorded on {want['source']} images, ran on {source}: not comparable")
            return 1
        bad = [k for k in want["lines"] if want["lines"][k] != lines.get(k)]
        print("digests match" if not bad and want["overall"] == overall else f"CHANGED: {', '.join(bad)}")
        return 1 if bad or want["overall"] != overall else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
