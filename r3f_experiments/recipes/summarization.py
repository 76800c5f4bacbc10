"""Summarization with BART: the paper's Tables 7-8 and the generation settings, the one place they
are written (``scripts/summarization/*`` and ``configs/summarization/*.yaml`` come from it)."""

from typing import Dict, List, NamedTuple, Optional, Sequence

from .run_spec import REQUIRED, RecipeError, Setting, argv, flag, pretrained_settings, yaml_only, yaml_text

# ---- paper Table 8 (shared by the three datasets) ----------------------------------------------
LR = "3e-5"
ADAM_BETAS = "(0.9,0.98)"
ADAM_EPS = "1e-8"
CLIP_NORM = "0.1"
DROPOUT = "0.1"
WEIGHT_DECAY = "0.01"
EPS = "1e-5"  # sigma
NOISE_TYPE = "uniform"  # U or N
LABEL_SMOOTHING = "0.1"  # BART's summarization recipe (not stated in the paper)
UPDATE_FREQ = "1"  # not in the paper; BART's README used 4 with 8 GPUs
MAX_POSITIONS = 1024


class Dataset(NamedTuple):
    title: str
    # paper Table 7
    max_tokens: int
    max_update: int
    warmup_updates: int
    # Table 8's lambda grid {0.001, 0.01, 0.1} is in the reference's units (KL summed over padded
    # target positions per sentence); this criterion averages per target token, so lambda =
    # lambda_ref x padded target length: the default is lambda_ref = 0.01 at the typical length.
    r3f_lambda: str
    lambda_note: str
    # generation (fairseq-generate) and scoring
    beam: int
    lenpen: str
    max_len_b: int
    min_len: int
    no_repeat_ngram_size: int
    lsum: bool  # also report summary-level ROUGE-Lsum (sentence-split)
    generation_note: str


DATASETS: Dict[str, Dataset] = {
    "cnn_dm": Dataset(
        "CNN/DailyMail",
        max_tokens=1024,
        max_update=80000,
        warmup_updates=1000,
        r3f_lambda="1.0",
        lambda_note="targets pad to ~100 BPE tokens: 1.0 ~ lambda_ref 0.01",
        beam=4,
        lenpen="2.0",
        max_len_b=140,
        min_len=55,
        no_repeat_ngram_size=3,
        lsum=True,
        generation_note="BART's CNN/DailyMail settings (fairseq examples/bart)",
    ),
    "gigaword": Dataset(
        "Gigaword",
        max_tokens=2048,
        max_update=200000,
        warmup_updates=5000,
        r3f_lambda="0.25",
        lambda_note="headlines pad to ~25 BPE tokens: 0.25 ~ lambda_ref 0.01",
        beam=6,
        lenpen="1.0",
        max_len_b=30,
        min_len=1,
        no_repeat_ngram_size=3,
        lsum=False,
        generation_note="BART published none for Gigaword; its XSum settings with lengths for headlines (our choice)",
    ),
    "reddit_tifu": Dataset(
        "Reddit TIFU",
        max_tokens=2048,
        max_update=200000,
        warmup_updates=5000,
        r3f_lambda="0.25",
        lambda_note="short (titles) pads to ~25 BPE tokens: 0.25 ~ lambda_ref 0.01 (use ~0.5 for VARIANT=long)",
        beam=6,
        lenpen="1.0",
        max_len_b=60,
        min_len=1,
        no_repeat_ngram_size=3,
        lsum=False,
        generation_note="BART's XSum settings (fairseq examples/bart), min length 1 for short titles (our choice)",
    ),
}
# -------------------------------------------------------------------------------------------------

METHODS = {"std": "label_smoothed_cross_entropy", "r3f": "label_smoothed_cross_entropy_r3f"}


def check(dataset: str, method: Optional[str] = None) -> Dataset:
    if dataset not in DATASETS:
        raise RecipeError(f"unknown DATASET '{dataset}' ({' '.join(DATASETS)})")
    if method is not None and method not in METHODS:
        raise RecipeError(f"unknown METHOD '{method}' ({' '.join(METHODS)})")
    return DATASETS[dataset]


def settings(
    dataset: str,
    method: str,
    *,
    data: str,
    user_dir: str,
    pretrained: Optional[str],
    arch: str = "bart_large",
    seed: int = 1,
    save_dir: Optional[str] = None,
    r3f_lambda: Optional[str] = None,
    noise_type: str = NOISE_TYPE,
    update_freq: str = UPDATE_FREQ,
    precision: Sequence[str] = (),
    yaml: bool = False,
) -> List[Setting]:
    """Every setting of ``bash scripts/summarization/DATASET/train.sh METHOD``, in command-line order."""
    spec = check(dataset, method)
    criterion = [flag("--criterion", METHODS[method], "criterion", "_name")]
    if method == "r3f":
        criterion += [
            flag("--r3f-lambda", r3f_lambda or spec.r3f_lambda, "criterion"),
            flag("--eps", EPS, "criterion"),
            flag("--noise-type", noise_type, "criterion"),
        ]
    out = [
        yaml_only("common", "user_dir", user_dir) if yaml else None,
        yaml_only("common", "amp", True) if yaml else None,
        yaml_only("task", "data", data) if yaml else None,
        *pretrained_settings(pretrained),
        flag("--task", "translation", "task", "_name"),
        flag("--source-lang", "source", "task"),
        flag("--target-lang", "target", "task"),
        flag("--truncate-source", True, "task"),
        flag("--max-source-positions", MAX_POSITIONS, "task"),
        flag("--max-target-positions", MAX_POSITIONS, "task"),
        flag("--arch", arch, "model", "_name"),
        flag("--layernorm-embedding", True, "model"),
        flag("--share-all-embeddings", True, "model"),
        flag("--share-decoder-input-output-embed", True, "model"),
        *criterion,
        flag("--label-smoothing", LABEL_SMOOTHING, "criterion"),
        flag("--dropout", DROPOUT, "model"),
        flag("--attention-dropout", DROPOUT, "model"),
        flag("--weight-decay", WEIGHT_DECAY, "optimizer"),
        flag("--optimizer", "adam", "optimizer", "_name"),
        flag("--adam-betas", ADAM_BETAS, "optimizer"),
        flag("--adam-eps", ADAM_EPS, "optimizer"),
        flag("--clip-norm", CLIP_NORM, "optimization"),
        flag("--lr-scheduler", "polynomial_decay", "lr_scheduler", "_name"),
        flag("--lr", LR, "optimization"),
        flag("--warmup-updates", spec.warmup_updates, "lr_scheduler"),
        flag("--total-num-update", spec.max_update, "lr_scheduler"),
        flag("--max-update", spec.max_update, "optimization"),
        flag("--max-tokens", spec.max_tokens, "dataset"),
        flag("--update-freq", update_freq, "optimization"),
        flag("--required-batch-size-multiple", 1, "dataset"),
        flag("--seed", seed, "common"),
        flag("--save-dir", save_dir, "checkpoint") if save_dir else None,
        flag("--no-epoch-checkpoints", True, "checkpoint"),
        flag("--find-unused-parameters", True, "distributed_training"),
        flag("--log-format", "json", "common"),
        flag("--log-interval", 100, "common"),
        *(flag(p, True, "common") for p in precision),
    ]
    return [s for s in out if s is not None]


def command(dataset: str, method: str, *, fairseq_train: str, data: str, user_dir: str, **kwargs) -> List[str]:
    """``fairseq-train DATA --user-dir USER_DIR ...``: what ``scripts/summarization/DATASET/train.sh`` runs."""
    return [
        fairseq_train,
        data,
        "--user-dir",
        user_dir,
        *argv(settings(dataset, method, data=data, user_dir=user_dir, **kwargs)),
    ]


def generation_flags(dataset: str) -> List[str]:
    """fairseq-generate's search settings for ``dataset`` (``evaluate.sh``)."""
    spec = check(dataset)
    return [
        "--beam",
        str(spec.beam),
        "--lenpen",
        spec.lenpen,
        "--max-len-a",
        "0",
        "--max-len-b",
        str(spec.max_len_b),
        "--min-len",
        str(spec.min_len),
        "--no-repeat-ngram-size",
        str(spec.no_repeat_ngram_size),
    ]


def config_name(dataset: str, method: str) -> str:
    return f"{dataset}_{method}"


def yaml_config(dataset: str, method: str) -> str:
    """configs/summarization/<dataset>_<method>.yaml: the run of ``train.sh METHOD``."""
    spec = check(dataset, method)
    header = [
        f"{spec.title}, method {method}: paper Table 7 ({spec.title}: max tokens {spec.max_tokens}, "
        f"{spec.max_update} updates,",
        f"{spec.warmup_updates} warm-up) and Table 8 (Adam {ADAM_BETAS}, eps {ADAM_EPS}, LR {LR}, polynomial "
        f"decay, clip {CLIP_NORM},",
        f"dropout {DROPOUT}, weight decay {WEIGHT_DECAY}); label smoothing {LABEL_SMOOTHING} as BART's recipe.",
        *(
            [f"lambda {spec.r3f_lambda}: {spec.lambda_note} (docs/summarization.md: lambda vs the reference)."]
            if method == "r3f"
            else []
        ),
        f"The run of `bash scripts/summarization/{dataset}/train.sh {method}`, generated from",
        "r3f_experiments/recipes/summarization.py by python -m r3f_experiments.recipes write-configs.",
        "",
        f"fairseq-hydra-train --config-dir configs/summarization --config-name {config_name(dataset, method)} \\",
        f"    task.data=summarization/{dataset}/bin checkpoint.finetune_from_model=bart.large/model.pt \\",
        "    common.user_dir=$PWD/fairseq_r3f",
    ]
    return yaml_text(
        settings(dataset, method, data=REQUIRED, user_dir=REQUIRED, pretrained=REQUIRED, yaml=True), header
    )
