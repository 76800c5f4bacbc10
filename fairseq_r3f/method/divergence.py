"""The symmetric KL divergence of R3F (paper, Eq. 3: KL_S(f(x) || f(x + z)))."""

import torch
import torch.nn.functional as F


def symmetric_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) + KL(q || p) per row, for p = softmax(logits_p), q = softmax(logits_q).

    The last dimension indexes classes (or the vocabulary); every other dimension is a
    batch dimension, and the result has their shape. Computed in fp32 whatever the
    input dtype: in half precision the difference of two nearly equal log-probabilities
    is mostly rounding. Using sum_c (p_c - q_c) (log p_c - log q_c), which equals the two
    KL terms added, costs one subtraction fewer than summing two ``kl_div`` calls and is
    exactly symmetric in its arguments.
    """
    if logits_p.shape != logits_q.shape:
        raise ValueError(
            f"symmetric_kl needs logits of equal shape, got {tuple(logits_p.shape)} and {tuple(logits_q.shape)}"
        )
    log_p = F.log_softmax(logits_p, dim=-1, dtype=torch.float32)
    log_q = F.log_softmax(logits_q, dim=-1, dtype=torch.float32)
    return symmetric_kl_of_log_probs(log_p, log_q)


def symmetric_kl_of_log_probs(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``symmetric_kl`` from log-probabilities (last dimension: classes / vocabulary), for a
    caller that already holds one side's log-softmax: over a 50k-word vocabulary it is the
    costly part, and the summarization criterion's task loss has computed the clean side's."""
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1)
