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
            f"symmetric_kl needs logits of equal shape, got {tuple(logits_p.shape)} "
            f"and {tuple(logits_q.shape)}"
        )
    log_p = F.log_softmax(logits_p, dim=-1, dtype=torch.float32)
    log_q = F.log_softmax(logits_q, dim=-1, dtype=torch.float32)
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1)


def masked_symmetric_kl(
    logits_p: torch.Tensor, logits_q: torch.Tensor, keep: torch.Tensor
) -> torch.Tensor:
    """Sum of ``symmetric_kl`` over the positions where ``keep`` is True.

    For sequence outputs (batch x length x vocabulary) with ``keep`` = non-pad targets:
    R3F's KL_S summed over real target tokens only, so that dividing by the number of
    target tokens gives a per-token mean that does not depend on how much padding the
    batch carries. Only kept rows enter the (fp32, vocabulary-sized) softmaxes.
    """
    if keep.shape != logits_p.shape[:-1]:
        raise ValueError(
            f"keep mask of shape {tuple(keep.shape)} does not match logits {tuple(logits_p.shape)}"
        )
    return symmetric_kl(logits_p[keep], logits_q[keep]).sum()
