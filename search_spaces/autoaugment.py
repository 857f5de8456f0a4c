"""AutoAugment-style space: K sub-policies of 2 (op, probability, magnitude) entries.

As in AutoAugment (Cubuk et al. 2018): its 16 ops, probability and magnitude on a
0.1 grid; one sub-policy is drawn per image, its entries applied in order, each with
its probability. The base (applied to every image first) is the baseline's
pad-crop and flip. Hard labels: join with "soft" ("autoaugment+soft") to search
the soft-target curve too.

The function below only calls trial.suggest_* and builds the policy dict: no
computation. Copy the file, edit it, and pass its path to `autosoft search --space`.
"""

DESCRIPTION = "AutoAugment-style: 5 sub-policies of 2 (op, probability, magnitude) over the 16 AutoAugment ops"

OPS = [
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "AutoContrast", "Invert", "Equalize",
    "Solarize", "Posterize", "Contrast", "Color", "Brightness", "Sharpness", "Cutout", "SamplePairing",
]
NUM_SUBPOLICIES = 5  # AutoAugment's final policy joins 5 searched sub-policies per search
OPS_PER_SUBPOLICY = 2
STEP = 0.1  # probability and magnitude grid (None: continuous, as Fast AutoAugment)
BASE = [["PadCrop", 1.0, 0.5], ["FlipLR", 0.5, 1.0]]  # pad 4 px on 32 px + horizontal flip


def space(trial) -> dict:
    subpolicies = [
        [
            [
                trial.suggest_categorical(f"sp{i}_op{j}", OPS),
                trial.suggest_float(f"sp{i}_p{j}", 0.0, 1.0, step=STEP),
                trial.suggest_float(f"sp{i}_m{j}", 0.0, 1.0, step=STEP),
            ]
            for j in range(OPS_PER_SUBPOLICY)
        ]
        for i in range(NUM_SUBPOLICIES)
    ]
    return {
        "version": 1,
        "name": "autoaugment-space",
        "kind": "subpolicies",
        "ranges": "standard",
        "base": BASE,
        "subpolicies": subpolicies,
    }
