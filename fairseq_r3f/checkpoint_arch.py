"""Print the --arch stored in a fairseq checkpoint (for scripts fine-tuning a user's model).

    python -m fairseq_r3f.checkpoint_arch path/to/model.pt
"""

import sys

import torch

from .checkpoint_safety import allow_fairseq_checkpoints


def checkpoint_arch(path: str) -> str:
    allow_fairseq_checkpoints()
    state = torch.load(path, map_location="cpu")
    for config in (state.get("args"), (state.get("cfg") or {}).get("model")):
        arch = getattr(config, "arch", None) or (config.get("arch") if isinstance(config, dict) else None)
        if arch:
            return arch
    raise ValueError(f"{path}: no architecture recorded (neither args.arch nor cfg.model.arch); set ARCH=...")


if __name__ == "__main__":
    print(checkpoint_arch(sys.argv[1]))
