"""Data-parallel training: metrics must aggregate across workers exactly as in one process.

fairseq sums the logging outputs of all workers when the criterion's
``logging_outputs_can_be_summed()`` is True (``Trainer._fast_stat_sync_sum``: each
worker adds up its own outputs key by key, then one all-reduce over the values in key
order), and calls ``reduce_metrics`` on that sum. Every entry of our outputs is a count
or a sum, and MCC/F1 are derived from summed confusion counts, so the sum must give
the same metrics as one process that saw all the data.

Launching 2 CPU workers with fairseq 0.12 (see ``launch_workers``): fairseq's own ways
to start workers all assume CUDA devices, so each worker is started as its own
``fairseq-train`` process with an explicit rank:

* ``--distributed-world-size 2`` alone: ``_infer_single_node_init`` asserts
  ``world size <= torch.cuda.device_count()`` (0 here), and ``call_main`` would spawn
  ``min(device_count, world_size)`` = 0 processes anyway.
* ``torchrun`` (env:// variables set): ``_infer_torch_distributed_launch_init`` computes
  ``rank % torch.cuda.device_count()`` -> ZeroDivisionError. Without
  ``--distributed-world-size`` fairseq ignores torchrun's variables altogether and each
  process trains alone (two independent runs writing the same checkpoints).
* Given ``--distributed-init-method``, fairseq infers nothing; with
  ``--distributed-rank R --distributed-no-spawn`` each process joins the gloo group as
  rank R. torchrun works too with ``--distributed-init-method env://`` if a shell
  adds ``--distributed-rank "$RANK"`` (torchrun --no-python sh -c ...).
* ``--ddp-backend legacy_ddp``: the default ``pytorch_ddp`` passes
  ``device_ids=[device_id]`` to torch's DistributedDataParallel, which rejects that for
  CPU modules.

``fairseq-validate`` cannot run 2 CPU workers at all: it gathers the workers' outputs
with ``distributed_utils.all_gather_list``, which allocates ``torch.cuda.ByteTensor``
(TypeError on CPU-only torch). The 2-worker evaluation is therefore the validation that
``fairseq-train`` runs (Trainer.valid_step, the summed path); the 1-worker reference is
``fairseq-validate``, and ``all_gather_list``'s path is checked in-process below.
"""

import io
import os
import pickle

import numpy as np
import pytest
import torch

from tests.helpers import CLASSIFICATION, TINY_ROBERTA, USER_DIR, json_records, launch_workers, run_fairseq

HEAD = "sentence_classification_head"
R3F = ["--user-dir", USER_DIR, "--criterion", "sentence_prediction_r3f", "--report-mcc", "--report-acc-and-f1"]
# metrics that must agree between 1 and N workers (wps/wpb/bsz are per step, not totals)
METRICS = ("loss", "nll_loss", "accuracy", "mcc", "f1", "acc_and_f1")


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def smoothed(task, criterion, *steps) -> dict:
    """Metrics after calling reduce_metrics once per step in one aggregation, as fairseq's
    trainer does over a validation epoch (validate.py makes a single call)."""
    from fairseq.logging import metrics

    with metrics.aggregate(new_root=True) as agg:
        for logging_outputs in steps:
            task.reduce_metrics(logging_outputs, criterion)
        return dict(agg.get_smoothed_values())


def fast_stat_sync_sum(*workers) -> list:
    """What ``Trainer._fast_stat_sync_sum`` + ``distributed_utils.all_reduce_dict`` leave on
    every worker; each worker is (its logging outputs of this step, is_dummy_batch)."""
    payloads = []
    for logging_outputs, dummy in workers:
        data = {}
        for key in logging_outputs[0]:  # fairseq takes the keys of the first output
            if dummy:  # a worker without data this step contributes zeros
                value = torch.zeros_like(torch.as_tensor(logging_outputs[0][key]))
            else:
                value = sum(log[key] for log in logging_outputs if key in log)
            data[key] = torch.as_tensor(value).to(torch.double)  # all_reduce_dict's dtype
        payloads.append(data)
    # all_reduce_dict concatenates the values in key order into one buffer: the workers'
    # key lists must be identical, in the same order, or values get added to wrong keys.
    for data in payloads[1:]:
        assert list(data) == list(payloads[0])
    return [{key: sum(data[key] for data in payloads) for key in payloads[0]}]


def assert_same_metrics(got: dict, want: dict, prefix: str = ""):
    for name in METRICS:
        key = prefix + name
        assert key in want, f"{key} missing from reference {want}"
        assert got[key] == pytest.approx(want[key], abs=1e-6), (key, got, want)


# ---------------------------------------------------------------------------------------
# in-process: the criterion's logging outputs summed like fairseq sums them
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(synthetic_data):
    """A tiny RoBERTa with our criterion, built in-process by fairseq's own setup path,
    whose head is re-initialised and re-centred so that it predicts both classes."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [synthetic_data, *R3F, *TINY_ROBERTA, *CLASSIFICATION])
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(1)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    task.load_dataset("valid")
    dataset = task.dataset("valid")

    # A random encoder gives all sentences nearly the same logits (one predicted class:
    # MCC 0 whatever the aggregation). Re-draw the head and put the decision boundary in
    # the widest gap of the middle third of the logit margins: both classes predicted,
    # no sentence within float noise of the boundary.
    model.eval()
    head = model.classification_heads[HEAD]
    gen = torch.Generator().manual_seed(0)
    full = dataset.collater([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        logits, _ = model(**full["net_input"], features_only=True, classification_head_name=HEAD)
        margin = (logits[:, 1] - logits[:, 0]).sort().values
        lo, hi = len(margin) // 3, 2 * len(margin) // 3
        i = lo + int((margin[lo + 1 : hi + 1] - margin[lo:hi]).argmax())
        head.out_proj.bias[1] -= (margin[i] + margin[i + 1]) / 2
    return task, model, criterion, dataset


def batch(dataset, indices):
    return dataset.collater([dataset[i] for i in indices])


def logging_output(tiny, indices) -> dict:
    _, model, criterion, dataset = tiny
    with torch.no_grad():
        _, _, out = criterion(model, batch(dataset, indices))
    return out


def test_summed_worker_outputs_give_single_process_metrics(tiny):
    """96 validation sentences in batches of 32, as 2 workers see them: step 1 worker 0
    has A, worker 1 has B; step 2 worker 0 has C, worker 1 a dummy batch (ignored)."""
    task, model, criterion, dataset = tiny
    model.eval()
    assert criterion.logging_outputs_can_be_summed()
    n = len(dataset)
    assert n == 96
    a, b, c = (logging_output(tiny, range(s, s + 32)) for s in (0, 32, 64))
    full = logging_output(tiny, range(n))
    for out in (a, b, c, full):
        assert all(torch.as_tensor(v).numel() == 1 for v in out.values()), out

    one_batch = smoothed(task, criterion, [full])
    one_process = smoothed(task, criterion, [a], [b], [c])  # 1 worker, 3 valid steps
    two_workers = smoothed(
        task,
        criterion,
        fast_stat_sync_sum(([a], False), ([b], False)),
        fast_stat_sync_sum(([c], False), ([a], True)),  # fairseq's dummy = first batch
    )
    gathered = smoothed(task, criterion, [a, c, b])  # fairseq-validate's all_gather_list
    # A worker's outputs cross process boundaries pickled (all_gather_list).
    gathered_pickled = smoothed(task, criterion, pickle.loads(pickle.dumps([a, c, b])))

    print("1 batch:", {k: one_batch[k] for k in METRICS})
    print("2 workers:", {k: two_workers[k] for k in METRICS})
    for got in (one_process, two_workers, gathered, gathered_pickled):
        assert_same_metrics(got, one_batch)

    # The check has teeth: both classes are predicted and confused, and averaging the
    # workers' own MCC / F1 (what a per-worker metric would give) differs from pooling.
    confusion = [float(full[f"_confusion_{t}_{p}"]) for t in (0, 1) for p in (0, 1)]
    assert all(x > 0 for x in confusion), confusion
    per_worker = [smoothed(task, criterion, [a], [c]), smoothed(task, criterion, [b])]
    for name in ("mcc", "f1"):
        mean = sum(w[name] for w in per_worker) / 2
        assert abs(mean - one_batch[name]) > 0.05, (name, per_worker, one_batch)


def test_logging_output_keys_do_not_depend_on_the_batch(tiny):
    """_fast_stat_sync_sum sums by the keys (and key order) of each worker's outputs: a
    worker whose batch lacks a class, or holds one sentence, must still send the same keys."""
    _, model, criterion, dataset = tiny
    labels = [int(dataset[i]["target"]) for i in range(len(dataset))]
    one_class = [i for i, y in enumerate(labels) if y == labels[0]][:8]
    torch.manual_seed(0)
    for mode in ("eval", "train"):
        getattr(model, mode)()
        keys = []
        for indices in (range(32), range(32, 96), one_class, [5]):
            out = criterion(model, batch(dataset, indices))[2]
            assert all(torch.as_tensor(v).numel() == 1 for v in out.values()), out
            keys.append(list(out))
        assert all(k == keys[0] for k in keys), keys
        assert ("symm_kl" in keys[0]) == (mode == "train")
    model.eval()


def test_checkpoint_broadcast_to_other_workers_loads(tiny):
    """Resuming / --restore-file with N workers: rank 0 reads the checkpoint and sends it
    with ``broadcast_object``, which torch.save()s it with tensors replaced by
    ``_TensorPlaceholder``; the other ranks torch.load() that with torch's default
    (weights_only since torch 2.6), so fairseq_r3f's checkpoint allow-list must cover it.
    (``--load-checkpoint-on-all-dp-ranks`` avoids the broadcast: every rank reads the file.)"""
    from fairseq.distributed import utils as distributed_utils
    from omegaconf import OmegaConf

    import fairseq_r3f  # noqa: F401  (installs the allow-list)

    _, model, _, _ = tiny
    state = {
        "cfg": OmegaConf.create({"common": {"seed": 1}, "task": {"_name": "sentence_prediction"}}),
        "model": model.state_dict(),
        "optimizer_history": [
            {"criterion_name": "SentencePredictionR3FCriterion", "optimizer_name": "FairseqAdam", "num_updates": 3}
        ],
        "last_optimizer_state": {"state": {0: {"exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 1e-3}]},
        "extra_state": {"val_loss": np.float64(0.5), "best": np.float64(0.5)},
    }
    round_trip_like_broadcast(distributed_utils, state)


def round_trip_like_broadcast(distributed_utils, state):
    """Emulate ``broadcast_object`` between rank 0 and rank 1 (same calls, no network)."""
    tensors = []
    sent = distributed_utils._split_tensors_from_obj(state, tensors)
    buffer = io.BytesIO()
    torch.save(sent, buffer)
    buffer.seek(0)
    received = torch.load(buffer, map_location="cpu")  # exactly _broadcast_object_slow's call
    back = distributed_utils._put_tensors_in_obj(received, tensors)
    assert set(back["model"]) == set(state["model"])
    assert all(back["model"][k] is state["model"][k] for k in state["model"])


# ---------------------------------------------------------------------------------------
# end to end: fairseq-train with 2 CPU workers vs fairseq-validate with 1
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_worker_run(synthetic_data, tmp_path_factory):
    """40 updates of R3F + R4F with 2 gloo workers, 16 sentences per worker and step.

    --batch-size-valid 32 splits the 96 validation sentences into 3 batches: worker 0
    gets batches 1 and 3, worker 1 batch 2 and then fairseq's dummy batch, whose outputs
    must count as zero."""
    out = str(tmp_path_factory.mktemp("distributed"))
    save_dir = os.path.join(out, "checkpoints")
    logs = launch_workers(
        "fairseq-train",
        [
            synthetic_data,
            *R3F,
            *TINY_ROBERTA,
            *CLASSIFICATION,
            "--spectral-norm-classification-head",
            "--batch-size-valid",
            "32",
            "--max-update",
            "40",
            "--save-dir",
            save_dir,
        ],
        out,
    )
    return {"logs": logs, "checkpoint": os.path.join(save_dir, "checkpoint_last.pt")}


@pytest.mark.slow
def test_two_workers_train_r3f_and_log_its_metrics(two_worker_run):
    rank0, rank1 = two_worker_run["logs"]
    assert "training on 2 devices" in rank0
    assert "initialized host" in rank1 and "as rank 1" in rank1
    assert "R4F: spectral norm" in rank0
    assert "done training" in rank0
    # 400 training sentences = 25 batches of 16, sharded: 13 per worker and epoch
    assert "grouped total_num_itrs = 13" in rank0

    inner = json_records(rank0, "train_inner")
    assert [r["num_updates"] for r in inner[:2]] == [5.0, 10.0]
    for record in inner:
        for key in ("loss", "symm_kl", "accuracy", "mcc", "f1", "acc_and_f1"):
            assert key in record, record
        assert record["symm_kl"] > 0
    # 16 sentences per worker and update; 32 = both workers' batches in every update
    assert inner[0]["bsz"] == 32

    valid = json_records(rank0, "valid")
    assert valid[-1]["valid_num_updates"] == 40
    assert valid[-1]["valid_accuracy"] > 75, valid  # it learns under data parallelism
    assert os.path.isfile(two_worker_run["checkpoint"])


@pytest.mark.slow
def test_two_worker_validation_equals_single_process(two_worker_run, synthetic_data, tmp_path):
    """The validation that ends the 2-worker run (checkpoint_last's weights, summed across
    workers by the trainer) vs fairseq-validate in one process on that checkpoint."""
    rank0 = two_worker_run["logs"][0]
    two = json_records(rank0, "valid")[-1]
    assert two["valid_num_updates"] == 40

    proc = run_fairseq(
        "fairseq-validate",
        synthetic_data,
        "--user-dir",
        USER_DIR,
        # fairseq-validate has no criterion options, but sentence_prediction's config
        # interpolates criterion.classification_head_name: without --criterion it fails
        # with InterpolationKeyError before loading anything.
        "--criterion",
        "sentence_prediction_r3f",
        "--task",
        "sentence_prediction",
        "--path",
        two_worker_run["checkpoint"],
        "--batch-size",
        "32",
        "--cpu",
        "--num-workers",
        "0",
        "--log-format",
        "json",
        "--valid-subset",
        "valid",
        cwd=str(tmp_path),
    )
    one = json_records(proc.stdout + proc.stderr, "valid")[-1]
    print("1 worker (fairseq-validate):", {k: one["valid_" + k] for k in METRICS})
    print("2 workers (fairseq-train):  ", {k: two["valid_" + k] for k in METRICS})

    # The data really was split, and every sentence counted once: fairseq-validate
    # reduces all 96 sentences in one call; the 2-worker run made 2 valid steps (32 + 32
    # sentences, then 32 + the dummy batch's 0), i.e. 48 sentences per step on average,
    # more than one worker's batch of 32 could hold.
    assert one["valid_bsz"] == 96
    assert two["valid_bsz"] == 48
    assert 2 * two["valid_wpb"] == pytest.approx(one["valid_wpb"], abs=0.2)
    # a non-degenerate model, so wrong aggregation would show
    assert 0 < one["valid_mcc"] < 100 and 0 < one["valid_f1"] < 100

    assert_same_metrics(two, one, prefix="valid_")


@pytest.mark.slow
def test_real_checkpoint_survives_the_broadcast_to_other_workers(two_worker_run):
    """As test_checkpoint_broadcast_to_other_workers_loads, with a checkpoint fairseq wrote."""
    from fairseq import checkpoint_utils
    from fairseq.distributed import utils as distributed_utils

    import fairseq_r3f  # noqa: F401

    state = checkpoint_utils.load_checkpoint_to_cpu(two_worker_run["checkpoint"])
    round_trip_like_broadcast(distributed_utils, state)
