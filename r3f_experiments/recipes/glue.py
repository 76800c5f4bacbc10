"""GLUE fine-tuning of RoBERTa: the paper's hyper-parameters, the one place they are written.

``scripts/glue/train.sh`` runs the command built here, ``configs/glue/<task>_<method>.yaml`` are
generated from it (``python -m r3f_experiments.recipes write-configs``), and the sweep and
probing drivers read their tasks, methods and metrics from it.
"""

import math
import os
import struct
from typing import List, Optional, Sequence

from .run_spec import REQUIRED, RecipeError, Setting, argv, flag, yaml_text
from .sentence_prediction import SentencePredictionRun, run_settings

# ---- paper Table 5 (per task) ------------------------------------------------------------------
TASKS = ["MNLI", "QQP", "RTE", "QNLI", "MRPC", "CoLA", "SST-2"]  # Table 2's column order
LR = {"MNLI": "5e-6", "QNLI": "5e-6", "QQP": "5e-6", "SST-2": "5e-6", "RTE": "1e-5", "MRPC": "1e-5", "CoLA": "1e-5"}
MAX_UPDATE = {"MNLI": 123873, "QNLI": 33112, "QQP": 113272, "SST-2": 20935, "RTE": 3120, "MRPC": 2296, "CoLA": 5336}
BATCH_SIZE = {"MNLI": 8, "QNLI": 8, "QQP": 32, "SST-2": 32, "RTE": 8, "MRPC": 16, "CoLA": 16}
NUM_CLASSES = {"MNLI": 3, "QNLI": 2, "QQP": 2, "SST-2": 2, "RTE": 2, "MRPC": 2, "CoLA": 2}
# the metric Table 2 reports, which also picks the best checkpoint
METRIC = {
    "MNLI": "accuracy",
    "QNLI": "accuracy",
    "QQP": "acc_and_f1",
    "SST-2": "accuracy",
    "RTE": "accuracy",
    "MRPC": "acc_and_f1",
    "CoLA": "mcc",
}
# validation subsets: MNLI's dev_matched is valid, dev_mismatched valid1 (scripts/glue/prepare.sh)
VALID_SUBSETS = {"MNLI": "valid,valid1"}

# ---- paper Table 6 (shared by every task) ------------------------------------------------------
WARMUP_PERCENT = 6  # % of the updates
ADAM_BETAS = "(0.9,0.98)"
ADAM_EPS = "1e-6"
WEIGHT_DECAY = "0.01"
DROPOUT = "0.1"
R3F_LAMBDA = "1.0"  # grid: 0.1 0.5 1.0 5.0
NOISE_TYPE = "uniform"  # U or N
EPS = "1e-5"  # sigma
MAX_TOKENS = 4400
MAX_POSITIONS = 512
# std++: standard fine-tuning trained this many times longer (Zhang et al. 2020; the Adam bias
# correction they restore is already in fairseq's Adam)
STD_PLUS_PLUS_FACTOR = 2

# ---- SMART (Jiang et al. 2020): its authors' MT-DNN defaults, the same for every task ----------
SMART_LAMBDA = "1.0"  # lambda_s (adv_alpha)
SMART_STEPS = 1  # K (adv_k)
SMART_STEP_SIZE = "1e-3"  # eta (adv_step_size)
SMART_NOISE_STD = "1e-5"  # sigma (adv_noise_var)
SMART_NORM_TYPE = "linf"  # adv_p_norm

# ---- FreeLB (Zhu et al. 2020): its authors' RoBERTa-large runs ---------------------------------
# launch/FreeLB/<task>-fp32-clip.sh in github.com/zhuchen03/FreeLB (fairseq-RoBERTa): ADV_LR
# ADV_STEP INIT_MAG MNORM of the lines left active there; RTE's active lines are its baseline
# (all 0), so RTE takes its commented FreeLB line. Their optimisation settings (Adam beta2 0.999,
# weight decay 0.1, ...) are not used: every method shares Tables 5-6.
ADV_LR = {
    "MNLI": "1e-1",
    "QNLI": "7.5e-2",
    "QQP": "2e-1",
    "SST-2": "1e-1",
    "RTE": "6e-2",
    "MRPC": "4e-2",
    "CoLA": "2.5e-2",
}
ADV_STEPS = {"MNLI": 2, "QNLI": 2, "QQP": 2, "SST-2": 2, "RTE": 3, "MRPC": 3, "CoLA": 3}
ADV_INIT_MAG = {
    "MNLI": "1e-1",
    "QNLI": "1.5e-1",
    "QQP": "3.2e-1",
    "SST-2": "1",
    "RTE": "1.6e-1",
    "MRPC": "6.4e-1",
    "CoLA": "4e-1",
}
ADV_MAX_NORM = {
    "MNLI": "3e-1",
    "QNLI": "1.5e-1",
    "QQP": "7e-1",
    "SST-2": "6e-1",
    "RTE": "1.4e-1",
    "MRPC": "4e-1",
    "CoLA": "3e-1",
}
ADV_NORM_TYPE = "l2"
# ---- r3f-rel: R3F with sigma on the model's scale ----------------------------------------------
# sigma / token-embedding RMS. 1: where the noise's own KL reaches the dropout disagreement on
# all-MiniLM-L6-v2 (docs/method.md, the sigma sweep); below it R3F acts as R-Drop. No sigma beat
# R-Drop beyond seed spread in that sweep: this is where the noise matters, not a tuned optimum.
R3F_RELATIVE_EPS = "1"

# ---- PRESET=small: a converted BERT-size encoder on CPU cores (e.g. all-MiniLM-L6-v2) ----------
# Table 6 and the methods stay; the schedule is scaled so one run takes minutes on one CPU core
# (docs/glue.md), the same for every task. The model flags and the pair layout come from the
# checkpoint (and its conversion.json), so any converted BERT works.
SMALL_LR = "1e-4"
SMALL_MAX_UPDATE = 80
SMALL_BATCH_SIZE = 16
SMALL_VALIDATE_INTERVAL_UPDATES = 40  # a run may end before its first epoch does
SMALL_LOG_INTERVAL = 10  # train records for the wall time to best
SMALL_DIAGNOSTICS_INTERVAL = 40  # noise_kl at updates 1, 40, 80 (about 1% of the step time)

# ---- PRESET=converged: the same encoders trained until they have learned the task -------------
# Table 6 and the methods stay; the schedule is in epochs of the task's own training set (BERT's
# usual 3), validated at every epoch's end, the best checkpoint kept (model only). --max-tokens
# never binds (batch x max positions), so an epoch is exactly ceil(train / batch) updates and
# the decay ends with the last one. LR: from a grid on std (docs/results/converged).
CONVERGED_EPOCHS = 3
CONVERGED_LR = "5e-5"
CONVERGED_BATCH_SIZE = 32
CONVERGED_LOG_INTERVAL = 50
# A probe (PROBE_CHECKPOINT) trains one linear layer on a frozen encoder: to its plateau, not for the
# fine-tuning schedule (at LR 5e-5 for 3 epochs MRPC's and RTE's probes stay at their majority class;
# LR 1e-3 x 10 or 30 epochs and 1e-2 x 30 agree within a point: docs/results/probing_real).
CONVERGED_PROBE_LR = "1e-3"
CONVERGED_PROBE_EPOCHS = 30
# -------------------------------------------------------------------------------------------------

PRESETS = {
    "paper": "RoBERTa-large: the paper's Tables 5-6, checkpoints saved (resumable)",
    "small": "a converted BERT-size encoder on CPU: one short schedule for every task, model flags read "
    "from the checkpoint, nothing saved (a run is minutes long; a killed one starts again)",
    "converged": f"a converted BERT-size encoder trained {CONVERGED_EPOCHS} epochs of the task's training set, "
    "validated every epoch, the best checkpoint kept (model only; a killed run starts again)",
}
# presets that read the model from the checkpoint and fine-tune any classification data-bin
CHECKPOINT_PRESETS = ("small", "converged")

METHODS = {
    "std": "fairseq's sentence_prediction",
    "std++": "std trained twice as long",
    "rdrop": "R-Drop: sentence_prediction_r3f with --noise-type none (the passes differ by dropout only)",
    "r3f": "sentence_prediction_r3f",
    "r4f": "r3f + --spectral-norm-classification-head (1-Lipschitz head)",
    "r3f-rel": f"r3f with sigma = {R3F_RELATIVE_EPS} x the token-embedding RMS (--noise-scale relative)",
    "smart": "sentence_prediction_smart (SMART, MT-DNN's published defaults)",
    "freelb": "--task sentence_prediction_adv (FreeLB, its authors' per-task RoBERTa-large settings)",
}
# configs/glue/<task>_<method>.yaml spell std++ as stdpp
CONFIG_SPELLING = {"std++": "stdpp", "r3f-rel": "r3f_rel"}
# the fairseq task of a linear probe (PROBE_CHECKPOINT): the encoder frozen, one linear layer on <s>
PROBE_TASK = "sentence_prediction_probe"
ADV_TASK = "sentence_prediction_adv"  # FreeLB's
# methods trained with sentence_prediction_r3f (they take its flags, e.g. the diagnostics interval)
R3F_FAMILY = ("r3f", "r4f", "rdrop", "r3f-rel")


def check(task: str, method: str, preset: str = "paper") -> None:
    if preset not in PRESETS:
        raise RecipeError(f"unknown PRESET '{preset}' ({' '.join(PRESETS)})")
    if method not in METHODS:
        raise RecipeError(f"unknown METHOD '{method}' ({' '.join(METHODS)})")
    if task not in LR and preset not in CHECKPOINT_PRESETS:
        raise RecipeError(
            f"unknown TASK '{task}' ({' '.join(LR)}; STS-B is regression, which R3F does "
            f"not cover; PRESET={' or '.join(CHECKPOINT_PRESETS)} fine-tunes any classification data-bin)"
        )
    if task not in LR and method == "freelb":
        raise RecipeError(
            f"METHOD freelb takes its authors' per-task settings, which exist for {' '.join(LR)} "
            f"only, not for TASK '{task}'"
        )


def label_count(data: str) -> int:
    """Classes of a sentence_prediction data-bin: the labels in DATA/label/dict.txt (fairseq pads a
    dictionary with madeupword entries, which are not labels)."""
    path = os.path.join(data, "label", "dict.txt")
    try:
        with open(path, encoding="utf-8") as f:
            labels = [line for line in f if line.strip() and not line.startswith("madeupword")]
    except OSError as e:
        raise RecipeError(f"{path}: {e.strerror}: DATA must be a sentence_prediction data-bin (input0/, label/)") from e
    if len(labels) < 2:
        raise RecipeError(f"{path}: {len(labels)} label(s); classification needs at least 2")
    return len(labels)


def train_size(data: str) -> int:
    """Sentences in a data-bin's training set: the count in the header of ``input0/train.idx``
    (fairseq's mmap index: 9-byte magic, version, dtype code, then the count)."""
    path = os.path.join(data, "input0", "train.idx")
    try:
        with open(path, "rb") as f:
            header = f.read(26)
    except OSError as e:
        raise RecipeError(f"{path}: {e.strerror}: PRESET=converged counts the training set there") from e
    if len(header) < 26 or header[:9] != b"MMIDIDX\x00\x00":
        raise RecipeError(f"{path}: not a fairseq mmap index (fairseq-preprocess --dataset-impl mmap writes one)")
    (count,) = struct.unpack("<Q", header[18:26])
    if count == 0:
        raise RecipeError(f"{path}: the training set is empty")
    return count


def max_update(
    task: str,
    method: str,
    preset: str = "paper",
    updates: Optional[int] = None,
    epoch_updates: Optional[int] = None,
    epochs: int = CONVERGED_EPOCHS,
) -> int:
    """The run's updates: ``updates`` (MAX_UPDATE), else the preset's (PRESET=converged:
    ``epochs`` of ``epoch_updates``); std++ trains twice as long."""
    if updates is not None and updates < 1:
        raise RecipeError(f"MAX_UPDATE must be a positive number of updates, got {updates}")
    if not updates:
        if preset == "converged":
            updates = epochs * epoch_updates
        else:
            updates = SMALL_MAX_UPDATE if preset == "small" else MAX_UPDATE[task]
    return updates * (STD_PLUS_PLUS_FACTOR if method == "std++" else 1)


def r3f_settings(r3f_lambda: str, noise_type: str, eps: str = EPS) -> List[Setting]:
    return [
        flag("--criterion", "sentence_prediction_r3f", "criterion", "_name"),
        flag("--r3f-lambda", r3f_lambda, "criterion"),
        flag("--eps", eps, "criterion"),
        flag("--noise-type", noise_type, "criterion"),
    ]


def method_settings(
    task: Optional[str],
    method: str,
    r3f_lambda: str = R3F_LAMBDA,
    noise_type: Optional[str] = None,
    smart_lambda: str = SMART_LAMBDA,
) -> List[Setting]:
    """The criterion (and, for FreeLB, task) settings that make ``method`` (``task``: the GLUE
    task whose FreeLB settings to take; None where there is no FreeLB). ``noise_type`` None:
    Table 6's; R-Drop has none, and refuses another."""
    if method == "rdrop":
        if noise_type not in (None, "none"):
            raise RecipeError(
                f"METHOD rdrop has no noise (--noise-type none); NOISE_TYPE={noise_type} is for r3f, r4f and r3f-rel"
            )
        return r3f_settings(r3f_lambda, "none")
    noise_type = noise_type or NOISE_TYPE
    if method in ("std", "std++"):
        return [flag("--criterion", "sentence_prediction", "criterion", "_name")]
    if method == "r3f":
        return r3f_settings(r3f_lambda, noise_type)
    if method == "r3f-rel":
        return r3f_settings(r3f_lambda, noise_type, R3F_RELATIVE_EPS) + [flag("--noise-scale", "relative", "criterion")]
    if method == "r4f":
        return r3f_settings(r3f_lambda, noise_type) + [flag("--spectral-norm-classification-head", True, "model")]
    if method == "smart":
        return [
            flag("--criterion", "sentence_prediction_smart", "criterion", "_name"),
            flag("--smart-lambda", smart_lambda, "criterion"),
            flag("--smart-steps", SMART_STEPS, "criterion"),
            flag("--smart-step-size", SMART_STEP_SIZE, "criterion"),
            flag("--smart-noise-std", SMART_NOISE_STD, "criterion"),
            flag("--smart-norm-type", SMART_NORM_TYPE, "criterion"),
        ]
    return [
        flag("--criterion", "sentence_prediction", "criterion", "_name"),
        flag("--adv-steps", ADV_STEPS[task], "task"),
        flag("--adv-lr", ADV_LR[task], "task"),
        flag("--adv-init-mag", ADV_INIT_MAG[task], "task"),
        flag("--adv-max-norm", ADV_MAX_NORM[task], "task"),
        flag("--adv-norm-type", ADV_NORM_TYPE, "task"),
    ]


def checkpoint_model(preset: str, pretrained: Optional[str], arch: Optional[str]):
    """PRESET=small or converged: (--arch, the other model settings, the separator token,
    --max-positions) of the checkpoint.
    A checkpoint converted from BERT (its conversion.json says so) takes BERT's pair layout
    [CLS] A [SEP] B [SEP] = <s> A </s> B </s>: no --separator-token."""
    from ..checkpoint_model_flags import checkpoint_model_flags, converted_from_bert, load_state

    if not pretrained:
        raise RecipeError(
            f"PRESET={preset} reads the model from the pre-trained checkpoint: set ROBERTA (e.g. a "
            "converted MiniLM, python -m r3f_experiments.convert_hf)"
        )
    if arch:
        raise RecipeError(
            f"PRESET={preset} takes the architecture from {pretrained}; ARCH={arch} is for the paper "
            "preset (model flags after -- override the checkpoint's)"
        )
    try:
        state = load_state(pretrained)
        words = checkpoint_model_flags(pretrained, state)
        bert_layout = converted_from_bert(pretrained, state)
    except (OSError, ValueError) as e:
        raise RecipeError(f"PRESET={preset}: {e}") from e
    pairs = dict(zip(words[::2], words[1::2]))
    arch = pairs.pop("--arch")
    # one --max-positions flag serves the task and the model: the checkpoint's
    max_positions = int(pairs.pop("--max-positions", MAX_POSITIONS))
    model = [flag(name, value, "model") for name, value in pairs.items()]
    return arch, model, (None if bert_layout else 2), max_positions


def settings(
    task: str,
    method: str,
    *,
    data: str,
    user_dir: str,
    pretrained: Optional[str],
    arch: Optional[str] = None,
    seed: int = 1,
    save_dir: Optional[str] = None,
    r3f_lambda: str = R3F_LAMBDA,
    noise_type: Optional[str] = None,
    smart_lambda: str = SMART_LAMBDA,
    precision: Sequence[str] = (),
    yaml: bool = False,
    separator_token: Optional[int] = 2,
    preset: str = "paper",
    updates: Optional[int] = None,
    lr: Optional[str] = None,
    batch_size: Optional[int] = None,
    probe_checkpoint: Optional[str] = None,
) -> List[Setting]:
    """Every setting of ``bash scripts/glue/train.sh TASK METHOD``, in its command-line order.
    ``probe_checkpoint``: a linear probe of that checkpoint's frozen encoder instead
    (``--task sentence_prediction_probe``; METHOD std, no ``pretrained``), the same schedule.
    ``separator_token`` None: BERT's pair layout (the checkpoint presets read it from the checkpoint).
    ``updates``, ``lr``, ``batch_size``: the run's instead of the preset's (warm-up and decay follow
    the updates; PRESET=converged's epochs follow the batch)."""
    check(task, method, preset)
    if probe_checkpoint:
        if method != "std":
            raise RecipeError(f"a probe (PROBE_CHECKPOINT) trains with METHOD std, not {method}")
        if pretrained:
            raise RecipeError(
                f"a probe's encoder comes from PROBE_CHECKPOINT={probe_checkpoint}; ROBERTA={pretrained} "
                "(--finetune-from-model) would load over it: set ROBERTA= (empty)"
            )
    if lr is not None and not _positive_number(lr):
        raise RecipeError(f"LR must be a positive number, got {lr!r}")
    if batch_size is not None and batch_size < 1:
        raise RecipeError(f"BATCH_SIZE must be a positive number of sentences, got {batch_size}")
    # a task outside GLUE (the small preset only): its classes from the data-bin, accuracy
    glue_task = task in LR
    metric = METRIC[task] if glue_task else "accuracy"
    num_classes = NUM_CLASSES[task] if glue_task else label_count(data)
    report = {
        "mcc": [flag("--report-mcc", True, "criterion")],
        "acc_and_f1": [flag("--report-acc-and-f1", True, "criterion")],
    }.get(metric, [])
    methods = method_settings(task, method, r3f_lambda, noise_type, smart_lambda)
    model: List[Setting] = []
    schedule: List[Setting] = []
    table_lr, table_batch, log_interval, max_positions = LR.get(task), BATCH_SIZE.get(task), 100, MAX_POSITIONS
    max_tokens, epoch_updates = MAX_TOKENS, None
    if preset in CHECKPOINT_PRESETS:
        if yaml:
            raise RecipeError("configs/ hold the paper preset only")
        arch, model, checkpoint_separator, max_positions = checkpoint_model(
            preset, probe_checkpoint or pretrained, arch
        )
        separator_token = separator_token and checkpoint_separator
    if preset == "small":
        table_lr, table_batch, log_interval = SMALL_LR, SMALL_BATCH_SIZE, SMALL_LOG_INTERVAL
        schedule = [
            flag("--validate-interval-updates", SMALL_VALIDATE_INTERVAL_UPDATES, "dataset"),
            flag("--no-save", True, "checkpoint"),
            flag("--num-workers", 0, "dataset"),
        ]
        if method in R3F_FAMILY:
            methods.append(flag("--r3f-diagnostics-interval", SMALL_DIAGNOSTICS_INTERVAL, "criterion"))
    if preset == "converged":
        table_lr, table_batch = (CONVERGED_PROBE_LR if probe_checkpoint else CONVERGED_LR), CONVERGED_BATCH_SIZE
    lr, batch_size = lr or table_lr, batch_size or table_batch
    if preset == "converged":
        log_interval = CONVERGED_LOG_INTERVAL
        max_tokens = batch_size * max_positions  # the batch size binds, never the tokens
        epoch_updates = math.ceil(train_size(data) / batch_size) if not updates else None
        epochs = CONVERGED_EPOCHS * (STD_PLUS_PLUS_FACTOR if method == "std++" else 1)
        epochs = CONVERGED_PROBE_EPOCHS if probe_checkpoint else epochs
        schedule = [
            None if updates else flag("--max-epoch", epochs, "optimization"),
            flag("--no-last-checkpoints", True, "checkpoint"),
            flag("--no-save-optimizer-state", True, "checkpoint"),
            flag("--num-workers", 0, "dataset"),
        ]
    return run_settings(
        SentencePredictionRun(
            data=data,
            user_dir=user_dir,
            pretrained=pretrained,
            task_name=PROBE_TASK
            if probe_checkpoint
            else "sentence_prediction_adv"
            if method == "freelb"
            else "sentence_prediction",
            probe_checkpoint=probe_checkpoint,
            num_classes=num_classes,
            arch=arch or "roberta_large",
            dropout=DROPOUT,
            methods=tuple(methods),
            report=tuple(report),
            adam_betas=ADAM_BETAS,
            adam_eps=ADAM_EPS,
            weight_decay=WEIGHT_DECAY,
            lr=lr,
            updates=max_update(
                task,
                method,
                preset,
                updates,
                epoch_updates,
                CONVERGED_PROBE_EPOCHS if probe_checkpoint else CONVERGED_EPOCHS,
            ),
            warmup_percent=WARMUP_PERCENT,
            batch=(flag("--batch-size", batch_size, "dataset"), flag("--max-tokens", max_tokens, "dataset")),
            seed=seed,
            save_dir=save_dir,
            valid_subset=VALID_SUBSETS.get(task, "valid"),
            metric=metric,
            precision=tuple(precision),
            yaml=yaml,
            separator_token=separator_token,
            model=tuple(model),
            log_interval=log_interval,
            schedule=tuple(s for s in schedule if s is not None),
            max_positions=max_positions,
        )
    )


def _positive_number(text: str) -> bool:
    try:
        return 0 < float(text) < math.inf
    except ValueError:
        return False


def command(task: str, method: str, *, fairseq_train: str, data: str, user_dir: str, **kwargs) -> List[str]:
    """``fairseq-train DATA --user-dir USER_DIR ...``: what ``scripts/glue/train.sh`` runs."""
    return [
        fairseq_train,
        data,
        "--user-dir",
        user_dir,
        *argv(settings(task, method, data=data, user_dir=user_dir, **kwargs)),
    ]


def options_from_env(env=None) -> dict:
    """The options ``scripts/glue/train.sh`` takes from its environment (ARCH, PRESET, MAX_UPDATE,
    LR, BATCH_SIZE, R3F_LAMBDA, NOISE_TYPE, SMART_LAMBDA, NO_SEPARATOR_TOKEN) as ``command``'s
    keywords: the command train.sh would run, built in Python. PRECISION: ``precision_from_env``."""
    env = os.environ if env is None else env
    named = {
        "arch": "ARCH",
        "preset": "PRESET",
        "lr": "LR",
        "r3f_lambda": "R3F_LAMBDA",
        "noise_type": "NOISE_TYPE",
        "smart_lambda": "SMART_LAMBDA",
    }
    options: dict = {key: env[var] for key, var in named.items() if env.get(var)}
    for key, var in (("updates", "MAX_UPDATE"), ("batch_size", "BATCH_SIZE")):
        if env.get(var):
            try:
                options[key] = int(env[var])
            except ValueError:
                raise RecipeError(f"{var} must be a whole number, got {env[var]!r}") from None
    if env.get("NO_SEPARATOR_TOKEN"):
        options["separator_token"] = None
    return options


def precision_from_env(env=None) -> List[str]:
    """train.sh's precision flags: PRECISION's words, or (PRECISION unset) --amp where a GPU is."""
    env = os.environ if env is None else env
    if "PRECISION" in env and env["PRECISION"] != "auto":
        return env["PRECISION"].split()
    import torch  # only for the unset case, as train.sh asks torch

    return ["--amp"] if torch.cuda.is_available() else []


def config_name(task: str, method: str) -> str:
    return f"{task.lower().replace('-', '_')}_{CONFIG_SPELLING.get(method, method)}"


def yaml_config(task: str, method: str) -> str:
    """configs/glue/<task>_<method>.yaml: the run of ``scripts/glue/train.sh TASK METHOD``."""
    updates = max_update(task, method)
    name = config_name(task, method)
    header = [
        f"GLUE {task}, method {method}: paper Table 5 ({task}: LR {LR[task]}, {updates} updates"
        + (f" = {STD_PLUS_PLUS_FACTOR} x {MAX_UPDATE[task]}" if method == "std++" else "")
        + f", batch {BATCH_SIZE[task]})",
        f"and Table 6 (Adam {ADAM_BETAS}, eps {ADAM_EPS}, polynomial decay, {WARMUP_PERCENT}% warm-up,",
        f"dropout {DROPOUT}, weight decay {WEIGHT_DECAY}). common.amp, not fp16: fp16 rounds most of the",
        "sigma = 1e-5 noise away. The run of `bash scripts/glue/train.sh " + f"{task} {method}`, generated",
        "from r3f_experiments/recipes/glue.py by python -m r3f_experiments.recipes write-configs.",
        "",
        f"fairseq-hydra-train --config-dir configs/glue --config-name {name} \\",
        f"    task.data=glue_bin/{task}-bin checkpoint.finetune_from_model=roberta.large/model.pt \\",
        "    common.user_dir=$PWD/fairseq_r3f",
    ]
    return yaml_text(settings(task, method, data=REQUIRED, user_dir=REQUIRED, pretrained=REQUIRED, yaml=True), header)
