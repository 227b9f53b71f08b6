"""Runs a reference training script (diffusers' train_dreambooth.py) without torchvision.

torchvision from PyPI does not import beside the CPU torch build this project pins, and the
script needs only a few of its transforms to turn a 64 px picture into a tensor. A package
named torchvision on the path would make transformers believe the real one is installed (it
then imports parts the stand-in lacks), so the script's own import line alone is pointed at
torchvision_transforms.py; the script is otherwise run unchanged, as __main__.

    python bench/shims/run_reference.py SCRIPT [script arguments...]
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

IMPORT_LINE = "from torchvision import transforms"


def main() -> None:
    script = Path(sys.argv[1]).resolve()
    source = script.read_text()
    if importlib.util.find_spec("torchvision") is None:
        if IMPORT_LINE not in source:
            raise SystemExit(f"{script} does not import torchvision's transforms as expected")
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        source = source.replace(IMPORT_LINE, "import torchvision_transforms as transforms", 1)
    sys.argv = [str(script), *sys.argv[2:]]
    sys.path.insert(0, str(script.parent))
    exec(compile(source, str(script), "exec"), {"__name__": "__main__", "__file__": str(script)})


if __name__ == "__main__":
    main()
