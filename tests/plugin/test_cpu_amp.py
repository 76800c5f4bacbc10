"""--amp on a CPU: training steps run under bfloat16 autocast (fairseq's own --amp autocasts on
CUDA only), fp32 without --amp; weights and gradients stay fp32."""

import pytest
import torch

from tests.helpers import TINY_ROBERTA, build_in_process, valid_batch


def linear_output_dtypes(model):
    """Record the output dtype of the first encoder layer's feed-forward input projection on every forward."""
    seen = []
    layer = model.encoder.sentence_encoder.layers[0].fc1
    layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize("criterion", ["sentence_prediction", "sentence_prediction_r3f"])
@pytest.mark.parametrize("amp", [False, True])
def test_train_step_autocasts_to_bfloat16_under_amp(synthetic_data, criterion, amp, caplog):
    from fairseq import optim
    from fairseq.optim.amp_optimizer import AMPOptimizer

    flags = [*TINY_ROBERTA, "--criterion", criterion, "--cpu", *(["--amp"] if amp else [])]
    cfg, task, model, crit = build_in_process(synthetic_data, *flags)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = AMPOptimizer.build_optimizer(cfg, params) if amp else optim.build_optimizer(cfg.optimizer, params)
    seen = linear_output_dtypes(model)
    model.train()
    with caplog.at_level("INFO"):
        loss, _, _ = task.train_step(valid_batch(task), model, crit, optimizer, update_num=0)
    assert len(seen) >= (2 if criterion.endswith("r3f") else 1)  # R3F: clean and noised passes at least
    assert set(seen) == {torch.bfloat16 if amp else torch.float32}
    assert ("bfloat16 autocast" in caplog.text) == amp
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    grads = [p.grad for p in params if p.grad is not None]  # the LM head has none in classification
    assert len(grads) > len(params) // 2 and all(g.dtype == torch.float32 for g in grads)
    assert all(p.dtype == torch.float32 for p in params)
    assert not torch.is_autocast_cpu_enabled()  # the autocast ends with the step
