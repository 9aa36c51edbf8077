"""Shared helpers of the hostile-input tests: a tiny trained run, and a fingerprint of a directory tree."""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path

from retro.cli import main

TINY_RUN = (
    "train --imitator latent --data human:arithmetic --n 40 --hidden-dim 8 --latent-dim 2 --max-length 16 "
    "--steps 4 --eval-every 2 --checkpoint-every 2 --batch-size 8 --seed 1 --out {out}"
)


def train_tiny(out: Path) -> Path:
    """A real (tiny) ``retro train`` run in ``out``: best checkpoint, history and training state."""
    assert main(shlex.split(TINY_RUN.format(out=out))) == 0
    return out


def fingerprint(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed): a file's SHA-256, a link's target, a directory's mark."""
    seen = {}
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        for name in subdirectories + files:
            path = Path(directory) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                seen[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                seen[key] = "dir"
            else:
                seen[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def one_line_error(code: int, err: str, *fragments: str) -> bool:
    """Exit status 2 and exactly one line on stderr holding every fragment, no traceback."""
    return code == 2 and err.count("\n") == 1 and "Traceback" not in err and all(f in err for f in fragments)
