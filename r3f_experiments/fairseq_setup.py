"""A fairseq task, model and criterion built from ``fairseq-train`` flags, in this process, as
fairseq-train builds them (for the benchmarks and the converter). Imports fairseq only when called."""

from typing import Any, NamedTuple, Optional, Sequence

# a 2-layer, 64-dim RoBERTa: the benchmarks' "tiny" architecture
TINY_ROBERTA_FLAGS = [
    "--arch",
    "roberta_base",
    "--encoder-layers",
    "2",
    "--encoder-embed-dim",
    "64",
    "--encoder-ffn-embed-dim",
    "128",
    "--encoder-attention-heads",
    "2",
]
# a BART of 2 + 2 layers of 64 dims: the sequence-to-sequence benchmarks' "tiny" architecture
TINY_BART_FLAGS = [
    "--arch",
    "bart_base",
    "--encoder-layers",
    "2",
    "--decoder-layers",
    "2",
    "--encoder-embed-dim",
    "64",
    "--decoder-embed-dim",
    "64",
    "--encoder-ffn-embed-dim",
    "128",
    "--decoder-ffn-embed-dim",
    "128",
    "--encoder-attention-heads",
    "2",
    "--decoder-attention-heads",
    "2",
]


class FairseqSetup(NamedTuple):
    cfg: Any
    task: Any
    model: Any
    criterion: Optional[Any]


def parse_flags(argv: Sequence[str]):
    """fairseq-train's configuration of ``argv`` (DATA first), nothing built."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    return convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), list(argv)))


def build_from_flags(
    argv: Sequence[str], *, criterion: bool = True, load_train: bool = False, seeded: bool = False
) -> FairseqSetup:
    """``argv`` as fairseq-train's command line (DATA first). ``load_train``: the train split is
    loaded before the model is built; ``seeded``: numpy and torch seeded from ``--seed`` first,
    as fairseq-train does, so that every build starts from the same weights."""
    from fairseq import tasks, utils

    cfg = parse_flags(argv)
    if seeded:
        import numpy as np

        np.random.seed(cfg.common.seed)
        utils.set_torch_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    if load_train:
        task.load_dataset("train", combine=False, epoch=1)
    model = task.build_model(cfg.model)
    return FairseqSetup(cfg, task, model, task.build_criterion(cfg.criterion) if criterion else None)


def r3f_classifier_on(data_dir: str, arch: str, eps: float, load_train: bool = False) -> FairseqSetup:
    """A 2-class ``sentence_prediction`` model with the ``sentence_prediction_r3f`` criterion, its
    diagnostics at every step, on DATA_DIR (``arch`` "tiny": ``TINY_ROBERTA_FLAGS``)."""
    from .paths import plugin_dir

    # fmt: off
    return build_from_flags(
        [data_dir, "--user-dir", plugin_dir(), "--task", "sentence_prediction", "--num-classes", "2",
         "--init-token", "0", "--separator-token", "2", "--max-positions", "512",
         "--criterion", "sentence_prediction_r3f", "--eps", str(eps), "--r3f-diagnostics-interval", "1",
         *(TINY_ROBERTA_FLAGS if arch == "tiny" else ["--arch", arch])],
        load_train=load_train,
    )
    # fmt: on
