"""Soft-target space: the curve p = 1 - (1 - p_min) * severity ** k and what feeds it.

Searched: the floor p_min (chance = 1 / number of classes, or a value in [0, 0.5]),
the power k in [0.5, 4] (log scale), how p is used (soften the target, weight the
loss, or both), how much each family of ops counts towards severity (a
sensitivity in [0, 1]: 0 keeps hard labels), and the base crop: Soft
Augmentation's SoftCrop at a searched strength, or the baseline's pad-crop.

It joins an augmentation space ("autoaugment+soft", "randaugment+soft"): its
"base" and "soft_targets" replace theirs. Alone it is a whole policy of crop and
flip only (kind "none"), as in the Soft Augmentation paper.

The function below only calls trial.suggest_* and builds the policy dict: no
computation. Copy the file, edit it, and pass its path to `autosoft search --space`.
"""

from autosoft.soft_targets import MODES  # how p is used: "target", "weight", "both"

DESCRIPTION = ("soft targets: p_min (chance or [0, 0.5]), power k in [0.5, 4], mode, per-family "
               "sensitivity, SoftCrop strength or pad-crop; alone: crop and flip only")

# Which ops each sensitivity covers. Ops listed nowhere keep hard labels.
FAMILIES = {
    "crop": ["SoftCrop", "PadCrop"],
    "geometric": ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"],
    "photometric": ["AutoContrast", "Invert", "Equalize", "Solarize", "Posterize", "Contrast", "Color",
                    "Brightness", "Sharpness"],
    "occlusion": ["Cutout"],
    "mix": ["SamplePairing"],
}
PAD_CROP = ["PadCrop", 1.0, 0.5]  # pad 4 px on 32 px, as the baseline
FLIP = ["FlipLR", 0.5, 1.0]


def space(trial) -> dict:
    if trial.suggest_categorical("soft_crop", ["SoftCrop", "PadCrop"]) == "SoftCrop":
        # magnitude 0.75 = the paper's sigma of 12 px on 32 px
        crop = ["SoftCrop", 1.0, trial.suggest_float("soft_crop_magnitude", 0.0, 1.0)]
    else:
        crop = PAD_CROP
    p_min = None  # None = chance, 1 / number of classes
    if trial.suggest_categorical("soft_p_min_kind", ["chance", "value"]) == "value":
        p_min = trial.suggest_float("soft_p_min", 0.0, 0.5)
    sensitivity = {family: trial.suggest_float(f"soft_sensitivity_{family}", 0.0, 1.0) for family in FAMILIES}
    return {
        "version": 1,
        "name": "soft-space",
        "kind": "none",
        "base": [crop, FLIP],
        "soft_targets": {
            "mode": trial.suggest_categorical("soft_mode", MODES),
            "p_min": p_min,
            "power": trial.suggest_float("soft_power", 0.5, 4.0, log=True),
            "sensitivity": {op: sensitivity[family] for family, ops in FAMILIES.items() for op in ops},
        },
    }
