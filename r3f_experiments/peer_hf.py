"""The peer check of standard fine-tuning: Hugging Face Transformers fine-tunes a converted
checkpoint's source on the same data-bin, with the schedule, optimiser and seed of
``scripts/glue/train.sh TASK std`` (the glue recipe's settings, read from
``r3f_experiments/recipes/glue.py``), and logs as ``fairseq-train --log-format json`` does, so
that the sweep's tables and figures put it beside the recipe's runs (as a method, e.g. ``hf``).
Manual: docs/huggingface.md (the peer check).

Needs ``transformers`` (``pip install -e ".[peer]"``); the project itself does not.
"""

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List, Tuple

from .dev_scores import label_classes, scores
from .recipes import glue


class PeerError(ValueError):
    """A peer run that cannot start as asked; raised before any training."""


def recipe_values(task: str, data: str, converted_model: str, preset: str, **overrides) -> Dict[str, str]:
    """{flag: value} of ``train.sh TASK std`` under ``preset``: the one place the schedule lives."""
    try:
        settings = glue.settings(
            task,
            "std",
            data=data,
            user_dir="-",
            pretrained=converted_model,
            preset=preset,
            **overrides,
        )
    except glue.RecipeError as e:
        raise PeerError(str(e)) from e
    return {s.flag: str(s.value) for s in settings if s.flag is not None and s.value is not False}


def source_rows(source_dir: str, data: str) -> List[int]:
    """The source vocabulary's id of every row of the data-bin's dictionary, which must be the
    converted one (``prepare.sh --wordpiece`` with the conversion of ``source_dir``)."""
    from fairseq.data import Dictionary

    from .convert_hf import read_vocab, special_tokens, vocabulary_order

    rows, symbols = vocabulary_order(read_vocab(source_dir), special_tokens(source_dir))
    dictionary = Dictionary.load(os.path.join(data, "input0", "dict.txt"))
    have = dictionary.symbols[dictionary.nspecial :]
    if have != symbols:
        first = next((i for i, (a, b) in enumerate(zip(have, symbols)) if a != b), min(len(have), len(symbols)))
        raise PeerError(
            f"{data}/input0/dict.txt is not the vocabulary of {source_dir} (row {first + dictionary.nspecial} "
            "differs): prepare the data with scripts/glue/prepare.sh --wordpiece CONVERTED, CONVERTED "
            "from python -m r3f_experiments.convert_hf on this source"
        )
    return rows[: len(dictionary)]


def load_split(data: str, split: str, rows: List[int], pair: bool) -> Tuple[List[Tuple[list, list]], List[str]]:
    """([(source ids of [CLS] A [SEP] B [SEP], its token types)], [label symbol]) of one split."""
    from fairseq.data import Dictionary, data_utils

    inputs = []
    for sub in ("input0", "input1") if pair else ("input0",):
        dictionary = Dictionary.load(os.path.join(data, sub, "dict.txt"))
        dataset = data_utils.load_indexed_dataset(os.path.join(data, sub, split), dictionary)
        if dataset is None:
            raise PeerError(f"{data}/{sub}/{split}: no such binarised split")
        inputs.append(dataset)
    label_dict = Dictionary.load(os.path.join(data, "label", "dict.txt"))
    labels = data_utils.load_indexed_dataset(os.path.join(data, "label", split), label_dict)
    if labels is None:
        raise PeerError(f"{data}/label/{split}: no such binarised split")
    examples = []
    for i in range(len(labels)):
        # fairseq's sentences end in </s> (= [SEP]); the task puts <s> (= [CLS]) first
        segments = [[rows[t] for t in d[i].tolist()] for d in inputs]
        ids = [rows[0]] + [t for s in segments for t in s]
        types = [0] * (1 + len(segments[0])) + [1] * sum(len(s) for s in segments[1:])  # BERT's segments
        examples.append((ids, types))
    symbols = [label_dict[labels[i][0].item()] for i in range(len(labels))]
    return examples, symbols


def batch_tensors(examples, indices, pad: int):
    import torch

    longest = max(len(examples[i][0]) for i in indices)
    ids = torch.full((len(indices), longest), pad, dtype=torch.long)
    types = torch.zeros((len(indices), longest), dtype=torch.long)
    mask = torch.zeros((len(indices), longest), dtype=torch.long)
    for row, i in enumerate(indices):
        tokens, token_types = examples[i]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        types[row, : len(tokens)] = torch.tensor(token_types)
        mask[row, : len(tokens)] = 1
    return ids, types, mask


def batches(order: List[int], size: int) -> List[List[int]]:
    """``order`` cut into consecutive batches of ``size`` (the last one shorter)."""
    return [order[i : i + size] for i in range(0, len(order), size)]


def batch_plan(examples: int, size: int, epochs: int, seed: int, fixed: bool = False) -> List[List[List[int]]]:
    """The batches of every epoch. Not ``fixed``: a new random split of the examples each epoch
    (Transformers' random sampler). ``fixed``: one random split, its batches in a new order each
    epoch, as fairseq's sentence_prediction task batches (a seeded shuffle, cut once)."""
    import torch

    order = torch.Generator().manual_seed(seed)
    if not fixed:
        return [batches(torch.randperm(examples, generator=order).tolist(), size) for _ in range(epochs)]
    groups = batches(torch.randperm(examples, generator=order).tolist(), size)
    return [[groups[i] for i in torch.randperm(len(groups), generator=order).tolist()] for _ in range(epochs)]


def logits_of(output):
    """Logits from a Transformers output or a plain tensor."""
    return output if hasattr(output, "dim") else output.logits


def log_line(kind: str, message: str) -> None:
    """One line as fairseq logs it: time | INFO | kind | message."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} | INFO | {kind} | {message}", flush=True)


def log_record(kind: str, record: dict) -> None:
    log_line(kind, json.dumps(record))


def mean_pooled_classifier(source: str, num_labels: int):
    """The source's encoder with a classifier on the mean of its final states over the real tokens
    (the pooling a sentence-transformers checkpoint was trained with) instead of BERT's [CLS]
    pooler; the classifier as BERT's (dropout, then a linear layer initialised N(0, 0.02))."""
    import torch
    from transformers import AutoModel

    class MeanPooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(source, add_pooling_layer=False)
            self.config = self.encoder.config
            self.dropout = torch.nn.Dropout(self.config.hidden_dropout_prob)
            self.classifier = torch.nn.Linear(self.config.hidden_size, num_labels)
            torch.nn.init.normal_(self.classifier.weight, std=self.config.initializer_range)
            torch.nn.init.zeros_(self.classifier.bias)

        def forward(self, input_ids, token_type_ids, attention_mask):
            states = self.encoder(
                input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1)
            return self.classifier(self.dropout(pooled))

    return MeanPooled()


def train(opts) -> int:
    import torch
    from transformers import AutoModelForSequenceClassification

    data = opts.data.rstrip("/")
    values = recipe_values(
        opts.task,
        data,
        os.path.join(opts.converted, "model.pt"),
        opts.preset,
        lr=opts.lr,
        batch_size=opts.batch_size,
        updates=opts.max_update,
    )
    metric = values["--best-checkpoint-metric"]
    if metric not in ("accuracy", "mcc", "acc_and_f1"):
        raise PeerError(f"{opts.task}: the recipe selects by {metric}, which the peer does not compute")
    classes = label_classes(data)
    pair = os.path.isdir(os.path.join(data, "input1"))
    rows = source_rows(opts.source, data)
    train_set, train_labels = load_split(data, "train", rows, pair)
    valid_set, valid_labels = load_split(data, values.get("--valid-subset", "valid"), rows, pair)
    y_train = [classes.index(s) for s in train_labels]
    y_valid = [classes.index(s) for s in valid_labels]

    lr, batch = float(values["--lr"]), int(values["--batch-size"])
    updates, warmup = int(values["--max-update"]), int(values["--warmup-updates"])
    epochs = int(values.get("--max-epoch", math.ceil(updates / math.ceil(len(train_set) / batch))))
    betas = tuple(float(b) for b in values["--adam-betas"].strip("()").split(","))
    clip = float(values.get("--clip-norm", 0))
    torch.manual_seed(opts.seed)
    if opts.pooling == "mean":
        model = mean_pooled_classifier(opts.source, len(classes))
    else:
        model = AutoModelForSequenceClassification.from_pretrained(opts.source, num_labels=len(classes))
    pad = model.config.pad_token_id or 0
    # every parameter decays, as under fairseq's Adam (decoupled weight decay, AdamW's)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=lr,
        betas=betas,
        eps=float(values["--adam-eps"]),
        weight_decay=float(values["--weight-decay"]),
    )

    def schedule(done: int) -> float:  # fairseq's polynomial_decay (power 1, to 0) after `done` updates
        if warmup and done <= warmup:
            return max(done, 1) / warmup
        return max(0.0, (updates - done) / (updates - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    plan = batch_plan(len(train_set), batch, epochs, opts.seed, fixed=opts.batches == "fixed")
    start, step, best = time.perf_counter(), 0, None
    log_every = int(values.get("--log-interval", 100))
    for epoch, epoch_batches in enumerate(plan, 1):
        model.train()
        running, seen = 0.0, 0
        for k, indices in enumerate(epoch_batches):
            if step >= updates:
                break
            first = k * batch
            ids, types, mask = batch_tensors(train_set, indices, pad)
            labels = torch.tensor([y_train[i] for i in indices])
            logits = logits_of(model(input_ids=ids, token_type_ids=types, attention_mask=mask))
            loss = torch.nn.functional.cross_entropy(logits, labels)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running, seen = running + loss.item() * len(indices), seen + len(indices)
            if step % log_every == 0:
                log_record(
                    "train_inner",
                    {
                        "epoch": epoch,
                        "update": round(epoch - 1 + first / len(train_set), 3),
                        "loss": f"{running / seen / math.log(2):.3f}",
                        "num_updates": str(step),
                        "lr": f"{scheduler.get_last_lr()[0]:g}",
                        "wall": str(round(time.perf_counter() - start)),
                    },
                )
                running, seen = 0.0, 0
        model.eval()
        preds, loss_sum = [], 0.0
        with torch.no_grad():
            for first in range(0, len(valid_set), 64):
                indices = list(range(first, min(first + 64, len(valid_set))))
                ids, types, mask = batch_tensors(valid_set, indices, pad)
                logits = logits_of(model(input_ids=ids, token_type_ids=types, attention_mask=mask))
                targets = torch.tensor([y_valid[i] for i in indices])
                loss_sum += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
                preds += logits.argmax(-1).tolist()
        found = scores(y_valid, preds, classes)
        best = found[metric] if best is None else max(best, found[metric])
        log_record(
            "valid",
            {
                "epoch": epoch,
                "valid_loss": f"{loss_sum / len(valid_set) / math.log(2):.3f}",
                **{f"valid_{k}": str(v) for k, v in found.items()},
                "valid_num_updates": str(step),
                f"valid_best_{metric}": str(best),
            },
        )
    log_line("train", f"done training in {time.perf_counter() - start:.1f} seconds")
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m r3f_experiments.peer_hf",
        description="Fine-tune a converted checkpoint's Hugging Face source with Transformers, with the "
        "glue recipe's std settings, logging as fairseq-train --log-format json does.",
    )
    p.add_argument("source", help="the Hugging Face folder that was converted (config.json, weights, vocab.txt)")
    p.add_argument("converted", help="its conversion (python -m r3f_experiments.convert_hf SOURCE CONVERTED)")
    p.add_argument("task", help="a GLUE task, or any classification data-bin's name (its classes, accuracy)")
    p.add_argument("data", help="the data-bin (GLUE_BIN/TASK-bin, prepared with --wordpiece CONVERTED)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--preset", default="converged", help="the glue recipe's preset whose schedule is used")
    p.add_argument("--lr", help="instead of the preset's (as LR= for train.sh)")
    p.add_argument("--batch-size", type=int, help="instead of the preset's (as BATCH_SIZE= for train.sh)")
    p.add_argument("--max-update", type=int, help="instead of the preset's (as MAX_UPDATE= for train.sh)")
    p.add_argument(
        "--batches",
        choices=("reshuffled", "fixed"),
        default="reshuffled",
        help="reshuffled: a new random split into batches every epoch (Transformers' sampler); fixed: one "
        "random split, its batches in a new order every epoch (fairseq's sentence_prediction task)",
    )
    p.add_argument(
        "--pooling",
        choices=("cls", "mean"),
        default="cls",
        help="cls: Transformers' sequence classifier ([CLS] through the pretrained pooler, as the recipe's "
        "head); mean: a classifier on the mean of the final states (a sentence-transformers checkpoint's "
        "own pooling), to measure what the [CLS] head costs such a checkpoint",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    opts = parse_args(argv)
    try:
        import transformers  # noqa: F401
    except ImportError:
        print('error: the peer check needs transformers: pip install -e ".[peer]"', file=sys.stderr)
        return 1
    try:
        return train(opts)
    except (PeerError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
