#!/usr/bin/env python3
"""Linear probes on cached features: the probe of ``PROBE_CHECKPOINT=... scripts/glue/train.sh
TASK std`` (fairseq's ``sentence_prediction_probe``) in seconds instead of a fine-tuning run.

The probed encoder is frozen and in eval mode, so its ``<s>`` representation of every example is
the same at every update: computed once per (checkpoint, data split), cached on disk, and the
linear layer is trained on the cache. ``--pooling mean`` reads the mean of the final states over
the example's tokens instead (what a sentence encoder such as all-MiniLM-L6-v2 was trained to
output); the fairseq probe has no such head, so that probe has no fairseq counterpart.

Everything else is read from the command the fairseq probe would run (built from the same recipe
table and environment as train.sh's): the data and its pair layout, the encoder (built and loaded
by the probe task itself), fairseq's Adam and polynomial-decay scheduler with that command's
settings, its batch size, updates and epochs, its seed. What differs from the fairseq path:
examples are batched in a seeded random order instead of by length (which only changes which
examples share a batch), and validation is at every epoch's end (the converged preset's).

    python -m r3f_experiments.feature_probe CHECKPOINT TASK [--seed S] [--cache DIR] [--pooling mean] [-- FLAGS]

prints the probe's result as JSON (best dev accuracy and the task's metric, with their update).
Manual: docs/probing.md."""

import argparse
import hashlib
import json
import math
import os
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

FEATURE_BATCH = 64  # examples per forward pass when computing features (memory only)
CACHE_VERSION = 1  # bump when what a cache file holds changes
POOLINGS = ("bos", "mean")  # the <s> state (the fairseq probe head's), or the mean over non-pad tokens
SUBSET_SEED = 0  # the draw of a training subset (--train-examples): one subset for every checkpoint


class ProbeResult(NamedTuple):
    accuracy: float  # best dev accuracy over the validations (%)
    update: int  # the update it was reached at
    metric: str  # the task's metric (--best-checkpoint-metric)
    metric_value: float  # its best value
    metric_update: int
    updates: int
    fit_seconds: float
    feature_seconds: float  # computing the features (0 when all came from the cache)


# --------------------------------------------------------------------------- the probe's command --


def probe_command(task: str, checkpoint: str, seed: int, save_dir: str, extra: Sequence[str] = ()) -> List[str]:
    """The fairseq-train command of ``PROBE_CHECKPOINT=checkpoint train.sh TASK std SEED SAVE_DIR
    -- EXTRA``, from the GLUE recipe table and the environment train.sh reads (GLUE_BIN and
    ``glue.options_from_env``'s). PRECISION is not read: the features are computed and the probe
    trained in float32."""
    from .paths import plugin_dir
    from .recipes import glue
    from .recipes.run_spec import RecipeError

    data = os.path.join(os.environ.get("GLUE_BIN") or "glue_bin", f"{task}-bin")
    try:
        words = glue.command(
            task,
            "std",
            fairseq_train="fairseq-train",
            data=data,
            user_dir=plugin_dir(),
            pretrained="",
            seed=seed,
            save_dir=save_dir,
            probe_checkpoint=checkpoint,
            **glue.options_from_env(),
        )
    except RecipeError as e:
        raise SystemExit(f"error: the probe of {checkpoint} on {task}: {e}") from e
    return [*words, *extra]


def probe_config(command: Sequence[str]):
    """The fairseq configuration of the probe command (nothing built, no checkpoint read)."""
    from .fairseq_setup import parse_flags

    cfg = parse_flags(command[1:])
    if cfg.task._name != "sentence_prediction_probe":
        raise SystemExit(f"error: not a probe command (--task {cfg.task._name}): {' '.join(command)}")
    return cfg


def build_probe(command: Sequence[str]):
    """(cfg, task, model) of the probe command, built in this process as fairseq-train builds
    them: the probe task loads and freezes the encoder of --probe-checkpoint."""
    from .fairseq_setup import build_from_flags

    probe_config(command)
    cfg, task, model, _ = build_from_flags(list(command[1:]), criterion=False)
    model.eval()
    if not cfg.common.cpu:
        import torch

        if torch.cuda.is_available():  # as fairseq-train would: the features on the GPU
            model.cuda()
    return cfg, task, model


# -------------------------------------------------------------------------------------- features --


def file_digest(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(checkpoint_digest: str, cfg, split: str, examples: Optional[int] = None, pooling: str = "bos") -> str:
    """What the features of ``split`` depend on: the checkpoint's bytes, the data files of the
    split (path, size, mtime), the task settings that build its inputs, the subset taken and the
    pooling (named only when not ``bos``: the keys of ``<s>`` caches stay what they were)."""
    data = os.path.realpath(cfg.task.data)
    files = []
    for part in ("input0", "input1", "label"):
        for ext in ("bin", "idx"):
            path = os.path.join(data, part, f"{split}.{ext}")
            if os.path.isfile(path):
                st = os.stat(path)
                files.append((path, st.st_size, int(st.st_mtime)))
    task = (cfg.task.init_token, cfg.task.separator_token, cfg.task.max_positions, cfg.task.num_classes)
    key = [CACHE_VERSION, checkpoint_digest, files, task, examples] + ([pooling] if pooling != "bos" else [])
    text = json.dumps(key)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def subset(size: int, examples: Optional[int]) -> List[int]:
    """The examples a probe trains on: all, or a fixed random ``examples`` of them (the same for
    every checkpoint and seed: drawn with SUBSET_SEED), in dataset order."""
    import numpy as np

    if examples is None or examples >= size:
        return list(range(size))
    return sorted(np.random.RandomState(SUBSET_SEED).permutation(size)[:examples].tolist())


def compute_features(
    task, model, split: str, examples: Optional[int] = None, batch_size: int = FEATURE_BATCH, pooling: str = "bos"
):
    """(features [N, C] float32, targets [N]) of the examples of ``split`` (``subset``), in dataset
    order: the final ``<s>`` representation the probe's linear layer reads, or (``pooling="mean"``)
    the mean of the final states over the example's tokens, ``<s>`` and ``</s>`` included."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    import torch
    from fairseq import utils

    task.load_dataset(split, combine=False, epoch=1)
    dataset = task.dataset(split)
    chosen = subset(len(dataset), examples)
    row_of = {idx: row for row, idx in enumerate(chosen)}
    feats, targets = [None] * len(chosen), [None] * len(chosen)
    order = sorted(chosen, key=dataset.size)
    on_gpu = next(model.parameters()).is_cuda
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            sample = dataset.collater([dataset[i] for i in order[start : start + batch_size]])
            net_input = utils.move_to_cuda(sample["net_input"]) if on_gpu else sample["net_input"]
            x, _ = model(**net_input, features_only=True)
            if pooling == "mean":
                keep = net_input["src_tokens"].ne(task.source_dictionary.pad()).unsqueeze(-1).to(x.dtype)
                x = (x * keep).sum(1) / keep.sum(1)
            else:
                x = x[:, 0]
            x = x.float().cpu()
            for row, idx in enumerate(sample["id"].tolist()):
                feats[row_of[idx]] = x[row]
                targets[row_of[idx]] = int(sample["target"][row])
    return torch.stack(feats), torch.tensor(targets, dtype=torch.long)


def cached_features(
    cache_dir: str, checkpoint_digest: str, cfg, built, split: str, examples: Optional[int] = None, pooling: str = "bos"
):
    """compute_features through the cache: (features, targets, seconds spent computing).
    ``built()`` gives (task, model), called only when the cache does not hold the features."""
    import torch

    path = os.path.join(cache_dir, f"{cache_key(checkpoint_digest, cfg, split, examples, pooling)}.pt")
    if os.path.isfile(path):
        stored = torch.load(path)
        return stored["features"], stored["targets"], 0.0
    t0 = time.monotonic()
    feats, targets = compute_features(*built(), split, examples, pooling=pooling)
    seconds = time.monotonic() - t0
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    meta = {
        "checkpoint_sha256": checkpoint_digest,
        "data": os.path.realpath(cfg.task.data),
        "split": split,
        "examples": examples,
        "pooling": pooling,
    }
    torch.save({"features": feats, "targets": targets, "meta": meta}, tmp)
    os.replace(tmp, path)  # a reader never sees half a file
    return feats, targets, seconds


# ------------------------------------------------------------------------------------------- fit --


def schedule(cfg, n_train: int):
    """(batch size, updates, updates per epoch) of the probe command."""
    batch = cfg.dataset.batch_size
    if not batch:
        raise SystemExit("error: the probe command has no --batch-size (the feature probe batches by sentences)")
    per_epoch = math.ceil(n_train / batch)
    limits = [u for u in (cfg.optimization.max_update, (cfg.optimization.max_epoch or 0) * per_epoch) if u]
    if not limits:
        raise SystemExit("error: the probe command sets neither --max-update nor --max-epoch")
    return batch, min(limits), per_epoch


def fit_probe(cfg, train, valid, classes: Sequence[str], seed: int) -> ProbeResult:
    """Train the linear layer on cached features with fairseq's optimizer and LR scheduler as the
    probe command configures them; validate at every epoch's end (and the last update)."""
    import torch
    import torch.nn.functional as F
    from fairseq import optim
    from fairseq.optim import lr_scheduler

    from fairseq_r3f.tasks.linear_probe import LinearProbeHead

    from .dev_scores import scores

    (x_train, y_train), (x_valid, y_valid) = train, valid
    torch.manual_seed(seed)
    head = LinearProbeHead(x_train.shape[1], cfg.task.num_classes)
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = optim.build_optimizer(cfg.optimizer, params)
    scheduler = lr_scheduler.build_lr_scheduler(cfg.lr_scheduler, optimizer)
    scheduler.step_update(0)
    batch, updates, per_epoch = schedule(cfg, len(y_train))
    metric = cfg.checkpoint.best_checkpoint_metric
    generator = torch.Generator().manual_seed(seed)
    best = {"accuracy": (-math.inf, 0), metric: (-math.inf, 0)}
    t0, update = time.monotonic(), 0
    while update < updates:
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(head(x_train[idx].unsqueeze(1)), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            update += 1
            scheduler.step_update(update)
            if update % per_epoch == 0 or update == updates:
                with torch.no_grad():
                    preds = head(x_valid.unsqueeze(1)).argmax(-1)
                got = scores(y_valid.tolist(), preds.tolist(), list(classes))
                for name in best:
                    if name in got and got[name] > best[name][0]:
                        best[name] = (got[name], update)
            if update == updates:
                break
    if metric not in best or best[metric][0] == -math.inf:
        raise SystemExit(f"error: the probe's metric {metric} is not one dev_scores.scores computes")
    return ProbeResult(
        accuracy=best["accuracy"][0],
        update=best["accuracy"][1],
        metric=metric,
        metric_value=best[metric][0],
        metric_update=best[metric][1],
        updates=updates,
        fit_seconds=time.monotonic() - t0,
        feature_seconds=0.0,
    )


def probe(
    command: Sequence[str],
    cache_dir: str,
    seed: int,
    train_examples: Optional[int] = None,
    digest: Optional[str] = None,
    pooling: str = "bos",
) -> ProbeResult:
    """The feature probe of one fairseq probe command (its --seed is ``seed``); ``train_examples``:
    train on that fixed subset of the training set (the dev set is always whole); ``pooling``: what
    the linear layer reads (POOLINGS)."""
    from .dev_scores import label_classes
    from .recipes.glue import train_size

    cfg = probe_config(command)
    digest = digest or file_digest(cfg.task.probe_checkpoint)
    valid_split = cfg.dataset.valid_subset.split(",")[0]
    if train_examples is not None and train_examples >= train_size(cfg.task.data):
        train_examples = None  # the whole set: the same features (and cache file) as without a subset
    model_of: Dict[str, tuple] = {}

    def built():  # the encoder is loaded once, and only when a split's features are not cached
        if not model_of:
            model_of["built"] = build_probe(command)[1:]
        return model_of["built"]

    x_train, y_train, s_train = cached_features(cache_dir, digest, cfg, built, "train", train_examples, pooling)
    x_valid, y_valid, s_valid = cached_features(cache_dir, digest, cfg, built, valid_split, pooling=pooling)
    result = fit_probe(cfg, (x_train, y_train), (x_valid, y_valid), label_classes(cfg.task.data), seed)
    return result._replace(feature_seconds=s_train + s_valid)


def run_probe(
    checkpoint: str,
    task: str,
    seed: int,
    save_dir: str,
    cache_dir: str,
    extra: Sequence[str] = (),
    train_examples: Optional[int] = None,
    pooling: str = "bos",
) -> Dict[str, object]:
    """Probe ``checkpoint`` on ``task``: the result with its command, also written to
    ``save_dir/probe.json`` (the file the probing driver reads)."""
    command = probe_command(task, checkpoint, seed, save_dir, extra)
    result = probe(command, cache_dir, seed, train_examples, pooling=pooling)
    record = {
        **result._asdict(),
        "checkpoint": checkpoint,
        "task": task,
        "seed": seed,
        "train_examples": train_examples,
        "pooling": pooling,
        "command": command,
    }
    os.makedirs(save_dir, exist_ok=True)
    tmp = os.path.join(save_dir, "probe.json.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, os.path.join(save_dir, PROBE_RESULT))
    return record


PROBE_RESULT = "probe.json"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.feature_probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="the checkpoint whose encoder is probed")
    parser.add_argument("task", help="GLUE_BIN/TASK-bin is probed (train.sh's TASK)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save-dir", default="checkpoints/feature_probe", help="probe.json goes here")
    parser.add_argument("--cache", default="checkpoints/feature_cache", help="the features' cache folder")
    parser.add_argument(
        "--train-examples", type=int, help="train on this many examples of the training set (a fixed random subset)"
    )
    parser.add_argument(
        "--pooling",
        choices=POOLINGS,
        default="bos",
        help="what the linear layer reads: bos, the <s> state (the fairseq probe's); mean, the mean over the tokens",
    )
    args = parser.parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        parser.error(f"{args.checkpoint}: no such checkpoint file")
    if args.train_examples is not None and args.train_examples < 1:
        parser.error(f"--train-examples must be a positive number, got {args.train_examples}")
    record = run_probe(
        args.checkpoint, args.task, args.seed, args.save_dir, args.cache, extra, args.train_examples, args.pooling
    )
    print(json.dumps({k: v for k, v in record.items() if k != "command"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
