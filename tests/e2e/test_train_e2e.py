"""Real fairseq-train runs of sentence_prediction_r3f (R3F and R4F) on tiny RoBERTa and BART:
--restore-file, resuming from checkpoint_last.pt, reloading for evaluation."""

import os

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.models.bart import BARTModel
from fairseq.models.roberta import RobertaModel
from sklearn.metrics import f1_score, matthews_corrcoef
from torch.nn.utils import parametrize

import fairseq_r3f  # noqa: F401
from tests.helpers import CLASSIFICATION, ROBERTA_DIMS, TINY_BART, TINY_ROBERTA, USER_DIR, fairseq_logs, run_fairseq

pytestmark = pytest.mark.slow
HEAD = "sentence_classification_head"
R3F = ["--criterion", "sentence_prediction_r3f", "--r3f-lambda", "1.0", "--eps", "1e-5"]
REPORTS = [
    "--report-mcc",
    "--report-acc-and-f1",
    "--best-checkpoint-metric",
    "accuracy",
    "--maximize-best-checkpoint-metric",
]


def train(data, save_dir, *flags):
    proc = run_fairseq(
        "fairseq-train",
        data,
        "--user-dir",
        USER_DIR,
        *CLASSIFICATION,
        *R3F,
        *REPORTS,
        "--save-dir",
        str(save_dir),
        *flags,
    )
    return proc.stdout + proc.stderr


def load_ensemble(save_dir, data, name="checkpoint_last.pt"):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [os.path.join(save_dir, name)], arg_overrides={"data": data}
    )
    models[0].eval()
    return models[0], task


def predict_valid(model, task):
    """Logits and targets for the whole valid set, in batches, as fairseq-validate sees it."""
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    logits, targets = [], []
    with torch.no_grad():
        for start in range(0, len(dataset), 32):
            sample = dataset.collater([dataset[i] for i in range(start, min(start + 32, len(dataset)))])
            logits.append(model(**sample["net_input"], classification_head_name=HEAD)[0])
            targets.append(sample["target"].view(-1))
    return torch.cat(logits), torch.cat(targets)


def head_matrices(model):
    head = model.classification_heads[HEAD]
    return [head.dense, head.out_proj]


def check_training_log(output, updates, min_valid_accuracy=None):
    logs = fairseq_logs(output)
    assert logs["train"] and logs["valid"], output[-3000:]
    final = logs["train"][-1]
    assert int(final["train_num_updates"]) == updates
    assert float(final["train_symm_kl"]) > 0
    if min_valid_accuracy is not None:  # it learns (the task is balanced: chance is ~50%)
        assert float(logs["valid"][-1]["valid_accuracy"]) > min_valid_accuracy
    return logs


@pytest.fixture(scope="module")
def pretrained_mlm(tmp_path_factory, synthetic_data):
    """A tiny RoBERTa pre-trained with fairseq's masked_lm on the task's own dictionary."""
    save_dir = tmp_path_factory.mktemp("mlm")
    run_fairseq(
        "fairseq-train",
        os.path.join(synthetic_data, "pretrain"),
        "--task",
        "masked_lm",
        "--criterion",
        "masked_lm",
        *ROBERTA_DIMS,
        "--tokens-per-sample",
        "64",
        "--batch-size",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--max-update",
        "10",
        "--cpu",
        "--num-workers",
        "0",
        "--seed",
        "7",
        "--save-dir",
        str(save_dir),
        "--no-epoch-checkpoints",
    )
    return str(save_dir / "checkpoint_last.pt")


def test_restore_file_from_pretrained_checkpoint(tmp_path, synthetic_data, pretrained_mlm):
    output = train(
        synthetic_data,
        tmp_path,
        *TINY_ROBERTA,
        "--restore-file",
        pretrained_mlm,
        "--reset-optimizer",
        "--reset-dataloader",
        "--reset-meters",
        "--lr",
        "1e-5",
        "--max-update",
        "2",
    )
    assert f"Loaded checkpoint {pretrained_mlm}" in output
    pretrained = checkpoint_utils.load_checkpoint_to_cpu(pretrained_mlm)["model"]
    tuned = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt"))["model"]
    encoder_keys = [k for k in pretrained if k.startswith("encoder.sentence_encoder.")]
    assert len(encoder_keys) > 20
    # 2 Adam steps of lr 1e-5 move no weight by more than ~2e-5; a fresh init differs by ~0.02
    worst = max((tuned[k] - pretrained[k]).abs().max().item() for k in encoder_keys)
    assert worst < 1e-4


@pytest.mark.parametrize("method", ["r3f", "r4f"])
def test_roberta_train_resume_reload(method, tmp_path, synthetic_data):
    r4f = ["--spectral-norm-classification-head"] if method == "r4f" else []
    output = train(synthetic_data, tmp_path, *TINY_ROBERTA, *r4f, "--max-update", "30")
    check_training_log(output, 30)

    # resume: the same command with a later --max-update continues from checkpoint_last.pt
    output = train(synthetic_data, tmp_path, *TINY_ROBERTA, *r4f, "--max-update", "40")
    assert f"Loaded checkpoint {tmp_path}/checkpoint_last.pt (epoch" in output
    assert "@ 30 updates)" in output
    logs = check_training_log(output, 40, min_valid_accuracy=60)
    valid = logs["valid"][-1]

    model, task = load_ensemble(str(tmp_path), synthetic_data)
    logits, targets = predict_valid(model, task)
    preds = logits.argmax(-1)
    # the validation metrics fairseq logged for these weights equal scikit-learn's
    assert float(valid["valid_accuracy"]) == pytest.approx(100 * (preds == targets).float().mean().item(), abs=0.051)
    assert float(valid["valid_mcc"]) == pytest.approx(100 * matthews_corrcoef(targets, preds), abs=0.006)
    # F1 is of the label written "1" in the data (as GLUE and fairseq define it), not of class index 1
    labels = task.label_dictionary
    as_written = [int(labels[i + labels.nspecial]) for i in range(2)]
    y_true, y_pred = [as_written[i] for i in targets], [as_written[i] for i in preds]
    assert float(valid["valid_f1"]) == pytest.approx(100 * f1_score(y_true, y_pred), abs=0.006)

    hub = RobertaModel.from_pretrained(str(tmp_path), "checkpoint_last.pt", data_name_or_path=synthetic_data, bpe=None)
    hub.eval()
    hub_logits = hub.predict(
        HEAD,
        task.dataset("valid").collater([task.dataset("valid")[i] for i in range(32)])["net_input"]["src_tokens"],
        return_logits=True,
    )
    assert torch.equal(hub_logits, logits[:32])

    for layer in head_matrices(model) + head_matrices(hub.model):
        assert parametrize.is_parametrized(layer, "weight") == (method == "r4f")
        if method == "r4f":
            assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() <= 1 + 1e-3


def test_bart_r4f_train_resume_reload(tmp_path, synthetic_data):
    args = [*TINY_BART, "--spectral-norm-classification-head"]
    check_training_log(train(synthetic_data, tmp_path, *args, "--max-update", "30"), 30)
    output = train(synthetic_data, tmp_path, *args, "--max-update", "40")
    assert "@ 30 updates)" in output
    check_training_log(output, 40, min_valid_accuracy=60)

    model, task = load_ensemble(str(tmp_path), synthetic_data)
    logits, _ = predict_valid(model, task)
    hub = BARTModel.from_pretrained(str(tmp_path), "checkpoint_last.pt", data_name_or_path=synthetic_data, bpe=None)
    hub.eval()
    hub_model = hub.model
    sample = task.dataset("valid").collater([task.dataset("valid")[i] for i in range(32)])
    with torch.no_grad():
        hub_logits = hub_model(**sample["net_input"], features_only=True, classification_head_name=HEAD)[0]
    assert torch.equal(hub_logits, logits[:32])
    for layer in head_matrices(model) + head_matrices(hub_model):
        assert parametrize.is_parametrized(layer, "weight")
        assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() <= 1 + 1e-3


def test_bart_r3f_stacked_trains(tmp_path, synthetic_data):
    """BART's classification input (src_tokens, src_lengths, prev_output_tokens) stacked to 2n."""
    output = train(synthetic_data, tmp_path, *TINY_BART, "--r3f-stack-passes", "--max-update", "40")
    logs = check_training_log(output, 40, min_valid_accuracy=60)
    # measured at diagnosed steps (the first, then every 100): the epochs that hold one
    carried = [float(r["train_noise_carried"]) for r in logs["train"] if "train_noise_carried" in r]
    assert carried and all(c == pytest.approx(1.0, abs=0.05) for c in carried)
    model, _ = load_ensemble(str(tmp_path), synthetic_data)
    assert not any(parametrize.is_parametrized(layer) for layer in head_matrices(model))
