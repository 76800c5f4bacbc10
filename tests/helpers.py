"""What the tests share besides fixtures: test-size model flags, a runner for fairseq's real
command-line tools, in-process builders of fairseq's task / model / criterion, and the reader
of fairseq's JSON logs. Imported as ``tests.helpers``."""

import os
import subprocess
import sys

from r3f_experiments.fairseq_logs import parse_json_logs as fairseq_logs  # noqa: F401  (re-exported)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_DIR = os.path.join(REPO, "fairseq_r3f")

# 2 layers, 64 dims: small enough for every test to train on CPU in seconds.
ROBERTA_DIMS = [
    "--arch", "roberta_base", "--encoder-layers", "2", "--encoder-embed-dim", "64",
    "--encoder-ffn-embed-dim", "128", "--encoder-attention-heads", "2",
]
TINY_ROBERTA = [*ROBERTA_DIMS, "--init-token", "0", "--separator-token", "2"]
TINY_BART = [
    "--arch", "bart_base", "--encoder-layers", "2", "--decoder-layers", "2",
    "--encoder-embed-dim", "64", "--decoder-embed-dim", "64",
    "--encoder-ffn-embed-dim", "128", "--decoder-ffn-embed-dim", "128",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
    "--add-prev-output-tokens",
]
CLASSIFICATION = [
    "--task", "sentence_prediction", "--num-classes", "2", "--max-positions", "64",
    "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3",
    "--batch-size", "16", "--cpu", "--num-workers", "0", "--seed", "1",
    "--log-format", "json", "--log-interval", "5", "--no-epoch-checkpoints",
]


def run_fairseq(tool: str, *args: str, cwd=None, timeout: int = 600, check: bool = True,
                env=None) -> subprocess.CompletedProcess:
    """Run a fairseq console script (fairseq-train, fairseq-hydra-train, ...)."""
    exe = os.path.join(os.path.dirname(sys.executable), tool)
    proc = subprocess.run(
        [exe, *args], cwd=cwd, timeout=timeout, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{tool} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def build_in_process(data_dir: str, *args: str, base=CLASSIFICATION):
    """(cfg, task, model, criterion) built by fairseq from fairseq-train style flags
    (``base``: the task and training flags the test-size runs share)."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    argv = [data_dir, "--user-dir", USER_DIR, *base, *args]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, argv))
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return cfg, task, model, criterion


def valid_batch(task, split: str = "valid", size: int = 8):
    """The first ``size`` examples of ``split`` as one fairseq sample."""
    task.load_dataset(split)
    dataset = task.dataset(split)
    return dataset.collater([dataset[i] for i in range(size)])

