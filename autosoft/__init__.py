"""autosoft: joint search of augmentation policies and soft targets.

Modules, one job each (a module imports only those above it; none is over 600 lines but ops):
    errors        AutosoftError, the one exception a user sees (as one line)
    files         atomic file writes
    process       process-wide settings made where a process starts (malloc thresholds)
    ops           the op table and its batched kernels; 716 lines, argued as data: one
                  table entry and one small kernel per op (26 ops), and splitting them would part
                  each op's magnitude mapping from the code that applies it
    soft_targets  the soft-target curve, its modes, the soft-target loss
    policy        policies as versioned, validated data; the built-in ones
    augment       PolicyAugment: a policy applied to a whole batch, with its targets and weights
    splits        stratified, seeded index picks: validation split, train subset, carved test split
    data          data sets as whole uint8 tensors: CIFAR-10/100, SVHN, image folders
    models        the networks (proxy, resnet18, wrn40_2, wrn28_10)
    metrics       accuracy, calibration (ECE, temperature), robustness, the test report
    plots         PNG plots (matplotlib imported when one is drawn)
    preview       a policy's preview grid (`autosoft show --preview`)
    config        TrainConfig and its checks (device, model, too few optimizer steps)
    rundir        a run folder: what it holds, resume checks, checkpoint, metrics log, plots
    train         the training loop and its data (`train`, `load_data`)
    evaluation    `evaluate_run`: a run folder scored again on its test split (`autosoft eval`)
    search        `autosoft search` (a package; its modules are listed in its docstring)
    cli           the `autosoft` command

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
