"""Draw a policy uniformly at random from a search space: the control a search must beat.

    python experiments/search_random_policy.py --space autoaugment+soft --seed 0 --out runs/random-policy.json

Same sampler the search starts from (Optuna's RandomSampler), no training.
"""

from __future__ import annotations

import argparse
import sys

from autosoft.errors import AutosoftError
from autosoft.search import sample_policies


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="autoaugment+soft", help="built-in space name or space file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="policy JSON file to write")
    args = ap.parse_args(argv)
    try:
        policy = sample_policies(args.space, 1, seed=args.seed)[0]
    except AutosoftError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    data = policy.to_dict()
    data["name"] = f"random-{args.space}-s{args.seed}"
    data["provenance"] = {"drawn_from": args.space, "seed": args.seed, "sampler": "optuna RandomSampler"}
    type(policy).from_dict(data).save(args.out)
    print(f"{args.out}: {data['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
