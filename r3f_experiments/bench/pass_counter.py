"""Count the forward and backward passes a training step makes through the encoder.

The measured form of the paper's Table 1 (forward / backward passes per step of standard
fine-tuning, R3F, SMART, FreeLB): hooks on the encoder's last layer see every pass,
whoever makes it (a criterion, a task's ``train_step``, fairseq's trainer).

- forward: each call of the last layer;
- backward: each time a gradient reaches that call's output, whether from
  ``loss.backward()`` or from ``torch.autograd.grad`` (SMART's ascent steps), so a pass
  without a graph (R3F's one-sided noised pass) counts as a forward only.

Each pass also records its batch size: ``--r3f-stack-passes`` runs one pass of 2n rows,
which ``forward_equivalents`` counts as 2 passes of n.
"""

from typing import List

import torch

from fairseq_r3f.perturb import find_token_encoder


class PassCounter:
    """Context manager: ``forward_rows`` / ``backward_rows`` hold the batch size of each pass."""

    def __init__(self, model: torch.nn.Module):
        self.layer = find_token_encoder(model).layers[-1]
        self.forward_rows: List[int] = []
        self.backward_rows: List[int] = []
        self._handle = None

    def _on_forward(self, module, args, output):
        out = output[0] if isinstance(output, tuple) else output
        rows = out.size(1)  # fairseq encoder layers are time-major: T x B x C
        self.forward_rows.append(rows)
        if out.requires_grad:
            out.register_hook(lambda grad: self.backward_rows.append(rows))

    def __enter__(self) -> "PassCounter":
        self._handle = self.layer.register_forward_hook(self._on_forward)
        return self

    def __exit__(self, *exc) -> bool:
        self._handle.remove()
        return False

    @property
    def forward(self) -> int:
        return len(self.forward_rows)

    @property
    def backward(self) -> int:
        return len(self.backward_rows)

    def forward_equivalents(self, batch_size: int) -> float:
        """Forward passes in units of one batch of ``batch_size`` sentences."""
        return sum(self.forward_rows) / batch_size

    def backward_equivalents(self, batch_size: int) -> float:
        return sum(self.backward_rows) / batch_size
