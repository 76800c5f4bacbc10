"""The plugin as researchers load it: fairseq-hydra-train from YAML, --user-dir pointing at the
repository or at a regular (non-editable) installed copy, and the listing of its flags."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import CLASSIFICATION, REPO, TINY_ROBERTA, fairseq_logs, run_fairseq

pytestmark = pytest.mark.slow


def test_hydra_train_from_yaml(tmp_path, synthetic_data):
    proc = run_fairseq(
        "fairseq-hydra-train",
        "--config-dir",
        os.path.join(REPO, "configs"),
        "--config-name",
        "tiny_roberta_r3f",
        f"task.data={synthetic_data}",
        f"common.user_dir={os.path.join(REPO, 'fairseq_r3f')}",
        f"checkpoint.save_dir={tmp_path / 'ckpt'}",
        "optimization.max_update=6",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        cwd=str(tmp_path),
    )
    logs = fairseq_logs(proc.stdout + proc.stderr)
    final = logs["train"][-1]
    assert int(final["train_num_updates"]) == 6
    assert float(final["train_symm_kl"]) > 0  # our criterion ran, with its noised pass
    assert "valid_mcc" in logs["valid"][-1]  # report_mcc from the YAML reached it
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_user_dir_of_an_installed_copy(tmp_path, synthetic_data):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            REPO,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    user_dir = target / "fairseq_r3f"
    assert (user_dir / "criterions" / "sentence_prediction_r3f.py").exists()
    proc = run_fairseq(
        "fairseq-train",
        synthetic_data,
        "--user-dir",
        str(user_dir),
        *CLASSIFICATION,
        *TINY_ROBERTA,
        "--criterion",
        "sentence_prediction_r3f",
        "--max-update",
        "2",
        "--save-dir",
        str(tmp_path / "ckpt"),
        cwd=str(tmp_path),
    )
    assert int(fairseq_logs(proc.stdout + proc.stderr)["train"][-1]["train_num_updates"]) == 2
    # fairseq's --user-dir import resolves to the installed copy, not to this repository
    code = (
        "import argparse, sys; from fairseq import utils; "
        "utils.import_user_module(argparse.Namespace(user_dir=sys.argv[1])); "
        "print('MODULE', sys.modules['fairseq_r3f'].__file__)"
    )
    where = subprocess.run(
        [sys.executable, "-c", code, str(user_dir)], capture_output=True, text=True, cwd=str(tmp_path), timeout=120
    )
    assert f"MODULE {user_dir}/__init__.py" in where.stdout, where.stdout + where.stderr[-2000:]


def test_flags_lists_every_flag_the_plugin_adds():
    """fairseq-train --help lists no flag of a task or criterion; python -m fairseq_r3f --flags lists every
    field of the plugin's config dataclasses (not those of the fairseq configs they extend), with its help
    text and default."""
    import dataclasses

    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterionConfig
    from fairseq.tasks.sentence_prediction import SentencePredictionConfig

    from fairseq_r3f.criterions.label_smoothed_cross_entropy_r3f import LabelSmoothedCrossEntropyR3FConfig
    from fairseq_r3f.criterions.sentence_prediction_r3f import SentencePredictionR3FConfig
    from fairseq_r3f.criterions.sentence_prediction_smart import SentencePredictionSmartConfig
    from fairseq_r3f.tasks.sentence_prediction_adv import SentencePredictionAdvConfig
    from fairseq_r3f.tasks.sentence_prediction_probe import SentencePredictionProbeConfig
    from fairseq_r3f.wordpiece import WordPieceBPEConfig

    help_text = run_fairseq(
        "fairseq-train", "--user-dir", os.path.join(REPO, "fairseq_r3f"), "--criterion", "sentence_prediction_r3f", "-h"
    ).stdout
    assert "sentence_prediction_r3f" in help_text and "--r3f-lambda" not in help_text

    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "fairseq_r3f", "--flags"], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sections = {}
    for block in proc.stdout.split("\n\n"):
        head, _, body = block.partition("\n")
        sections[head.split(" (")[0]] = body
    configs = {
        "--criterion sentence_prediction_r3f": (SentencePredictionR3FConfig, None),
        "--criterion label_smoothed_cross_entropy_r3f": (
            LabelSmoothedCrossEntropyR3FConfig,
            LabelSmoothedCrossEntropyCriterionConfig,
        ),
        "--criterion sentence_prediction_smart": (SentencePredictionSmartConfig, None),
        "--task sentence_prediction_adv": (SentencePredictionAdvConfig, SentencePredictionConfig),
        "--task sentence_prediction_probe": (SentencePredictionProbeConfig, SentencePredictionConfig),
        "--bpe wordpiece": (WordPieceBPEConfig, None),
    }
    for section, (config, fairseq_parent) in configs.items():
        body = sections[section]
        inherited = {f.name for f in dataclasses.fields(fairseq_parent)} if fairseq_parent else {"_name"}
        own = [f for f in dataclasses.fields(config) if f.name not in inherited]
        assert own
        for field in own:
            flag = "--" + field.name.replace("_", "-")
            entry = re.search(rf"^  {re.escape(flag)}\b.*\(default: (.*)\)\n      (.*)$", body, re.MULTILINE)
            assert entry, f"{section}: {flag} not listed"
            assert entry.group(2) == field.metadata["help"]
            default = field.default.value if hasattr(field.default, "value") else field.default
            shown = ("on" if default else "off") if field.type is bool else repr(default)
            assert entry.group(1) == shown, (flag, entry.group(1))
        for name in inherited - {"_name"}:
            assert f"  --{name.replace('_', '-')} " not in body  # fairseq's own flags are not the plugin's
    assert "--spectral-norm-classification-head" in proc.stdout
