"""A RoBERTa / XLM-R / converted-BERT sentence-prediction run (the shape GLUE and XNLI share),
built from one record: the tables fill a ``SentencePredictionRun``, ``run_settings`` writes it out
in command-line order."""

from dataclasses import dataclass
from typing import List, Optional, Tuple

from .run_spec import Setting, flag, pretrained_settings, yaml_only

MAX_POSITIONS = 512


@dataclass(frozen=True)
class SentencePredictionRun:
    """What one fine-tuning run is; the fields without a default are what a recipe table decides."""

    data: str
    user_dir: str
    pretrained: Optional[str]  # model.pt to fine-tune; None or "": random init
    num_classes: int
    arch: str
    lr: str
    updates: int
    warmup_percent: int
    batch: Tuple[Setting, ...]  # --batch-size and --max-tokens, in the table's order
    seed: int
    metric: str  # --best-checkpoint-metric (maximised)
    adam_betas: str
    adam_eps: str
    weight_decay: str
    dropout: str
    methods: Tuple[Setting, ...] = ()  # the criterion (and FreeLB's task) settings of the method
    report: Tuple[Setting, ...] = ()  # extra metrics the criterion logs (MCC, F1)
    task_name: str = "sentence_prediction"
    probe_checkpoint: Optional[str] = None  # sentence_prediction_probe: the checkpoint whose encoder it probes
    save_dir: Optional[str] = None
    valid_subset: str = "valid"
    precision: Tuple[str, ...] = ()  # e.g. ("--amp",)
    # RoBERTa's <s> A </s></s> B </s>; None for a BERT converted with WordPiece: <s> A </s> B </s>
    separator_token: Optional[int] = 2
    model: Tuple[Setting, ...] = ()  # model settings beyond --arch (sizes read from a checkpoint)
    schedule: Tuple[Setting, ...] = ()  # validation and saving settings other than fairseq's defaults
    log_interval: int = 100
    max_positions: int = MAX_POSITIONS
    # the YAML config of fairseq-hydra-train: adds what only it needs (common.amp, not --fp16, which
    # rounds most of the sigma = 1e-5 noise away; the spelled-out head settings; task.data, user_dir)
    yaml: bool = False


def classification_head_settings() -> List[Setting]:
    """fairseq-hydra-train resolves the sentence_prediction task's interpolations of these two
    before it imports common.user_dir, so a YAML config must spell them out."""
    return [
        yaml_only("criterion", "classification_head_name", "sentence_classification_head"),
        yaml_only("criterion", "regression_target", False),
    ]


def run_settings(run: SentencePredictionRun) -> List[Setting]:
    """Every setting of ``run``, in command-line order."""
    r4f = any(s.flag == "--spectral-norm-classification-head" for s in run.methods)
    yaml = run.yaml
    out = [
        yaml_only("common", "user_dir", run.user_dir) if yaml else None,
        yaml_only("common", "amp", True) if yaml else None,
        yaml_only("task", "data", run.data) if yaml else None,
        *pretrained_settings(run.pretrained),
        flag("--task", run.task_name, "task", "_name"),
        flag("--probe-checkpoint", run.probe_checkpoint, "task") if run.probe_checkpoint else None,
        flag("--num-classes", run.num_classes, "task"),
        flag("--init-token", 0, "task"),
        flag("--separator-token", run.separator_token, "task") if run.separator_token is not None else None,
        flag("--max-positions", run.max_positions, "task"),
        flag("--arch", run.arch, "model", "_name"),
        *run.model,
        flag("--dropout", run.dropout, "model"),
        flag("--attention-dropout", run.dropout, "model"),
        *run.methods,
        *(classification_head_settings() if yaml else []),
        *run.report,
        yaml_only("model", "spectral_norm_classification_head", False) if yaml and not r4f else None,
        flag("--optimizer", "adam", "optimizer", "_name"),
        flag("--adam-betas", run.adam_betas, "optimizer"),
        flag("--adam-eps", run.adam_eps, "optimizer"),
        flag("--weight-decay", run.weight_decay, "optimizer"),
        flag("--clip-norm", "0.0", "optimization"),
        flag("--lr-scheduler", "polynomial_decay", "lr_scheduler", "_name"),
        flag("--lr", run.lr, "optimization"),
        flag("--warmup-updates", run.updates * run.warmup_percent // 100, "lr_scheduler"),
        flag("--total-num-update", run.updates, "lr_scheduler"),
        flag("--max-update", run.updates, "optimization"),
        *run.batch,
        flag("--required-batch-size-multiple", 1, "dataset"),
        flag("--seed", run.seed, "common"),
        flag("--save-dir", run.save_dir, "checkpoint") if run.save_dir else None,
        flag("--no-epoch-checkpoints", True, "checkpoint"),
        *run.schedule,
        flag("--valid-subset", run.valid_subset, "dataset"),
        flag("--best-checkpoint-metric", run.metric, "checkpoint"),
        flag("--maximize-best-checkpoint-metric", True, "checkpoint"),
        flag("--find-unused-parameters", True, "distributed_training"),
        flag("--log-format", "json", "common"),
        flag("--log-interval", run.log_interval, "common"),
        *(flag(p, True, "common") for p in run.precision),
    ]
    return [s for s in out if s is not None]
