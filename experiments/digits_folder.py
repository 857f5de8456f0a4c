"""Write scikit-learn's digits (1,797 grey 8x8 images, 10 classes) out as an image folder.

One PNG per image under OUT/<digit>/, no train/ and test/ sub-folders: the layout a user's own
data set most often has, so `autosoft train --dataset imagefolder:OUT` carves its test split.
The 17 grey levels (0..16) are stretched to 0..255. A small real data set that is not CIFAR,
shipped inside a Python package (nothing is downloaded).

    python experiments/digits_folder.py OUT
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def write_digits(out: Path) -> int:
    """Write the PNGs (an existing complete folder is left as it is); returns the image count."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)  # (1797, 8, 8), levels 0..16
    for i, (image, label) in enumerate(zip(images, digits.target)):
        path = out / str(label) / f"{i:04d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)  # 2-D uint8: mode L
    return len(images)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (one sub-folder per digit)")
    args = parser.parse_args(argv)
    n = write_digits(args.out)
    print(f"{n} digits written to {args.out}/0..9/; try: autosoft train --dataset imagefolder:{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
