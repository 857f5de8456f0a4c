"""RandAugment-style space: N ops per image, drawn uniformly, all at one magnitude M.

As in RandAugment (Cubuk et al. 2019), over torchvision's 14 RandAugment ops, with
N in 1..3 and M continuous in [0, 1]. The base is the baseline's pad-crop and
flip. Hard labels: join with "soft" ("randaugment+soft") to search the
soft-target curve too.

The function below only calls trial.suggest_* and builds the policy dict: no
computation. Copy the file, edit it, and pass its path to `autosoft search --space`.
"""

DESCRIPTION = "RandAugment-style: N in 1..3 ops per image at one magnitude M in [0, 1]"

OPS = [
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
    "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
]
BASE = [["PadCrop", 1.0, 0.5], ["FlipLR", 0.5, 1.0]]  # pad 4 px on 32 px + horizontal flip


def space(trial) -> dict:
    return {
        "version": 1,
        "name": "randaugment-space",
        "kind": "randaugment",
        "ranges": "standard",
        "base": BASE,
        "randaugment": {
            "num_ops": trial.suggest_int("num_ops", 1, 3),
            "magnitude": trial.suggest_float("magnitude", 0.0, 1.0),
            "magnitude_std": 0.0,
            "ops": OPS,
        },
    }
