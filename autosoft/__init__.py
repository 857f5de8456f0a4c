"""autosoft: joint search of augmentation policies and soft targets.

>>> import autosoft
>>> autosoft.load_policy("baseline").base[0].op
'PadCrop'
"""

__version__ = "0.1.0"

from autosoft.augment import AugmentedBatch, PolicyAugment  # noqa: E402
from autosoft.errors import AutosoftError  # noqa: E402
from autosoft.ops import OPS, apply_op  # noqa: E402
from autosoft.policy import Policy, load_policy  # noqa: E402
from autosoft.soft_targets import SoftTargetLoss, soft_target_cross_entropy, soft_targets  # noqa: E402

__all__ = [
    "AugmentedBatch", "AutosoftError", "OPS", "Policy", "PolicyAugment", "SoftTargetLoss",
    "apply_op", "load_policy", "soft_target_cross_entropy", "soft_targets",
]
