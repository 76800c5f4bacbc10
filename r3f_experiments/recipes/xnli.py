"""Zero-shot XNLI: XLM-R fine-tuned on English MultiNLI, the paper's Table 9, the one place its
hyper-parameters are written (``scripts/xnli/train.sh`` and ``configs/xnli/*.yaml`` come from it)."""

from typing import List, Optional, Sequence

from .glue import method_settings
from .run_spec import REQUIRED, RecipeError, Setting, argv, flag, yaml_text
from .sentence_prediction import SentencePredictionRun, run_settings

# ---- paper Table 9 ---------------------------------------------------------------------------
LR = "3e-5"
MAX_UPDATE = 450000
WARMUP_PERCENT = 6  # not in Table 9; the GLUE value (Table 6)
MAX_TOKENS = 4400
MAX_SENTENCES = 8
MAX_POSITIONS = 512
ADAM_BETAS = "(0.9,0.98)"
ADAM_EPS = "1e-8"
WEIGHT_DECAY = "0.01"
DROPOUT = "0.1"
R3F_LAMBDA = "1.0"  # grid: 0.5 1 3 5
NOISE_TYPE = "uniform"  # U or N
NUM_CLASSES = 3
# ----------------------------------------------------------------------------------------------

METHODS = {
    "std": "fairseq's sentence_prediction",
    "r3f": "sentence_prediction_r3f",
    "r4f": "r3f + --spectral-norm-classification-head",
}


def settings(
    method: str,
    *,
    data: str,
    user_dir: str,
    pretrained: Optional[str],
    arch: str = "roberta_large",
    seed: int = 1,
    save_dir: Optional[str] = None,
    r3f_lambda: str = R3F_LAMBDA,
    noise_type: str = NOISE_TYPE,
    precision: Sequence[str] = (),
    yaml: bool = False,
) -> List[Setting]:
    """Every setting of ``bash scripts/xnli/train.sh METHOD`` in its command-line order. Model
    selection on the English dev set only (zero-shot: no target-language data is used)."""
    if method not in METHODS:
        raise RecipeError(f"unknown METHOD '{method}' ({' '.join(METHODS)})")
    return run_settings(
        SentencePredictionRun(
            data=data,
            user_dir=user_dir,
            pretrained=pretrained,
            num_classes=NUM_CLASSES,
            arch=arch,
            dropout=DROPOUT,
            methods=tuple(method_settings(None, method, r3f_lambda, noise_type)),
            adam_betas=ADAM_BETAS,
            adam_eps=ADAM_EPS,
            weight_decay=WEIGHT_DECAY,
            lr=LR,
            updates=MAX_UPDATE,
            warmup_percent=WARMUP_PERCENT,
            batch=(flag("--max-tokens", MAX_TOKENS, "dataset"), flag("--batch-size", MAX_SENTENCES, "dataset")),
            seed=seed,
            save_dir=save_dir,
            metric="accuracy",
            precision=tuple(precision),
            max_positions=MAX_POSITIONS,
            yaml=yaml,
        )
    )


def command(method: str, *, fairseq_train: str, data: str, user_dir: str, **kwargs) -> List[str]:
    """``fairseq-train DATA --user-dir USER_DIR ...``: what ``scripts/xnli/train.sh`` runs."""
    return [
        fairseq_train,
        data,
        "--user-dir",
        user_dir,
        *argv(settings(method, data=data, user_dir=user_dir, **kwargs)),
    ]


def config_name(method: str) -> str:
    return f"xnli_{method}"


def yaml_config(method: str) -> str:
    """configs/xnli/xnli_<method>.yaml: the run of ``scripts/xnli/train.sh METHOD``."""
    header = [
        f"Zero-shot XNLI, method {method}: XLM-R fine-tuned on English MultiNLI with the paper's Table 9",
        f"(LR {LR}, {MAX_UPDATE} updates, {MAX_SENTENCES} sentences / {MAX_TOKENS} tokens per batch, "
        f"Adam {ADAM_BETAS} eps {ADAM_EPS}, dropout {DROPOUT},",
        f"weight decay {WEIGHT_DECAY}; {WARMUP_PERCENT}% warm-up as for GLUE). The run of "
        f"`bash scripts/xnli/train.sh {method}`, generated",
        "from r3f_experiments/recipes/xnli.py by python -m r3f_experiments.recipes write-configs.",
        "",
        f"fairseq-hydra-train --config-dir configs/xnli --config-name {config_name(method)} \\",
        "    task.data=xnli_bin checkpoint.finetune_from_model=xlmr.large/model.pt common.user_dir=$PWD/fairseq_r3f",
    ]
    return yaml_text(settings(method, data=REQUIRED, user_dir=REQUIRED, pretrained=REQUIRED, yaml=True), header)
