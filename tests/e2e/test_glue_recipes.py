"""scripts/glue/train.sh (the paper's Tables 5-6) and configs/glue/*.yaml describe the same runs,
and both run for real (shrunk to a tiny model on CPU)."""

import glob
import os
import shlex
import subprocess
import time

import pytest
from omegaconf import OmegaConf

from r3f_experiments.fairseq_logs import parse_valid_subsets
from r3f_experiments.recipes import glue
from tests.helpers import REPO, USER_DIR, fairseq_logs, run_fairseq, tiny_recipe_flags

TRAIN_SH = os.path.join(REPO, "scripts", "glue", "train.sh")
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "glue", "*.yaml")))
TASKS = {"cola": "CoLA", "mnli": "MNLI", "mrpc": "MRPC", "qnli": "QNLI", "qqp": "QQP", "rte": "RTE", "sst_2": "SST-2"}
TINY = tiny_recipe_flags(4)


def dry_run(task, method, *extra):
    proc = subprocess.run(
        ["bash", TRAIN_SH, task, method, "7", "/tmp/save", *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "DRY_RUN": "1", "PRECISION": ""},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    argv = shlex.split(proc.stdout)
    flags = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else True
            flags[arg[2:].replace("-", "_")] = value
    return flags


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: os.path.basename(c)[:-5])
def test_yaml_equals_train_sh(config):
    name = os.path.basename(config)[:-5]
    spelled = {glue.CONFIG_SPELLING.get(m, m): m for m in glue.METHODS}
    method = next(spelled[s] for s in sorted(spelled, key=len, reverse=True) if name.endswith("_" + s))
    task_key = name[: -len(glue.CONFIG_SPELLING.get(method, method)) - 1]
    flags = dry_run(TASKS[task_key], method)
    cfg = OmegaConf.load(config)
    assert float(flags["lr"]) == float(cfg.optimization.lr[0])
    assert int(flags["max_update"]) == cfg.optimization.max_update == cfg.lr_scheduler.total_num_update
    assert int(flags["warmup_updates"]) == cfg.lr_scheduler.warmup_updates == cfg.optimization.max_update * 6 // 100
    assert int(flags["batch_size"]) == cfg.dataset.batch_size
    assert int(flags["num_classes"]) == cfg.task.num_classes
    assert flags["task"] == cfg.task._name
    assert flags["criterion"] == cfg.criterion._name
    assert flags["best_checkpoint_metric"] == cfg.checkpoint.best_checkpoint_metric
    assert flags["valid_subset"] == cfg.dataset.valid_subset
    assert float(flags["weight_decay"]) == cfg.optimizer.weight_decay
    assert ("spectral_norm_classification_head" in flags) == cfg.model.spectral_norm_classification_head
    assert ("report_mcc" in flags) == cfg.criterion.get("report_mcc", False)
    assert ("report_acc_and_f1" in flags) == cfg.criterion.get("report_acc_and_f1", False)
    if method in ("r3f", "r4f", "rdrop", "r3f-rel"):
        assert float(flags["r3f_lambda"]) == cfg.criterion.r3f_lambda
        assert flags["noise_type"] == cfg.criterion.noise_type == ("none" if method == "rdrop" else "uniform")
        assert float(flags["eps"]) == cfg.criterion.eps == (1.0 if method == "r3f-rel" else 1e-5)
        assert (
            (flags.get("noise_scale") == "relative")
            == (cfg.criterion.get("noise_scale") == "relative")
            == (method == "r3f-rel")
        )
    if method == "smart":
        for key in ("smart_lambda", "smart_step_size", "smart_noise_std"):
            assert float(flags[key]) == cfg.criterion[key], key
        assert int(flags["smart_steps"]) == cfg.criterion.smart_steps
        assert flags["smart_norm_type"] == cfg.criterion.smart_norm_type
    if method == "freelb":
        for key in ("adv_lr", "adv_init_mag", "adv_max_norm"):
            assert float(flags[key]) == cfg.task[key], key
        assert int(flags["adv_steps"]) == cfg.task.adv_steps
        assert flags["adv_norm_type"] == cfg.task.adv_norm_type


def test_paper_table_5_values():
    """Spot checks against the paper's appendix (Table 5), independent of the YAML files."""
    rte, mnli, qqp = dry_run("RTE", "r3f"), dry_run("MNLI", "std"), dry_run("QQP", "std++")
    assert (rte["lr"], rte["max_update"], rte["batch_size"]) == ("1e-5", "3120", "8")
    assert (mnli["lr"], mnli["max_update"], mnli["batch_size"], mnli["num_classes"]) == ("5e-6", "123873", "8", "3")
    assert qqp["max_update"] == str(2 * 113272)  # std++ trains twice as long
    assert dry_run("CoLA", "r4f")["best_checkpoint_metric"] == "mcc"
    # SMART: MT-DNN's defaults; FreeLB: the authors' RoBERTa-large RTE and QQP runs
    smart = dry_run("RTE", "smart")
    assert (
        smart["smart_lambda"],
        smart["smart_steps"],
        smart["smart_step_size"],
        smart["smart_noise_std"],
        smart["smart_norm_type"],
    ) == ("1.0", "1", "1e-3", "1e-5", "linf")
    rte, qqp = dry_run("RTE", "freelb"), dry_run("QQP", "freelb")
    assert rte["task"] == "sentence_prediction_adv" and rte["criterion"] == "sentence_prediction"
    assert (rte["adv_lr"], rte["adv_steps"], rte["adv_init_mag"], rte["adv_max_norm"]) == (
        "6e-2",
        "3",
        "1.6e-1",
        "1.4e-1",
    )
    assert (qqp["adv_lr"], qqp["adv_steps"], qqp["adv_init_mag"], qqp["adv_max_norm"]) == (
        "2e-1",
        "2",
        "3.2e-1",
        "7e-1",
    )


def test_bad_task_or_method_is_refused():
    for args, message in ((["STS-B", "r3f"], "unknown TASK 'STS-B'"), (["RTE", "pgd"], "unknown METHOD 'pgd'")):
        proc = subprocess.run(
            ["bash", TRAIN_SH, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "DRY_RUN": "1", "PRECISION": ""},
        )
        assert proc.returncode == 2 and message in proc.stderr


def recipe(script, *args, env):
    return subprocess.run(
        ["bash", os.path.join(REPO, "scripts", *script.split("/")), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PRECISION": "", **env},
    )


def test_missing_pretrained_model_or_data_is_refused_before_anything_runs(tmp_path, synthetic_data):
    """fairseq's --restore-file treats a missing file as "start fresh": a typo in ROBERTA (XLMR,
    BART) would train from random init and exit 0. The recipes refuse it, and missing data, first."""
    os.symlink(synthetic_data, tmp_path / "RTE-bin")
    for name in ("xnli/input0", "summarization"):
        os.makedirs(tmp_path / name)
    (tmp_path / "xnli" / "input0" / "dict.txt").write_text("")
    (tmp_path / "summarization" / "dict.source.txt").write_text("")
    save = tmp_path / "save"
    cases = [
        (
            "glue/train.sh",
            ["RTE", "r3f", "1", str(save)],
            {"GLUE_BIN": str(tmp_path), "ROBERTA": "/nope/model.pt"},
            "ROBERTA=/nope/model.pt: no such file",
        ),
        (
            "glue/train.sh",
            ["MRPC", "r3f", "1", str(save)],
            {"GLUE_BIN": str(tmp_path), "ROBERTA": ""},
            f"GLUE_BIN={tmp_path} holds no prepared MRPC",
        ),
        (
            "xnli/train.sh",
            ["r4f", "1", str(save)],
            {"XNLI_BIN": str(tmp_path / "xnli"), "XLMR": "/nope/xlmr.pt"},
            "XLMR=/nope/xlmr.pt: no such file",
        ),
        (
            "summarization/gigaword/train.sh",
            ["r3f", "1", str(save)],
            {"DATA": str(tmp_path / "summarization"), "BART": "/nope/bart.pt"},
            "BART=/nope/bart.pt: no such file",
        ),
    ]
    for script, args, env, message in cases:
        proc = recipe(script, *args, env=env)
        assert proc.returncode == 2 and message in proc.stderr, (script, proc.stderr)
    assert not save.exists()


def test_help_prints_the_usage_not_the_source():
    for script in (
        "glue/train.sh",
        "xnli/train.sh",
        "summarization/cnn_dm/train.sh",
        "summarization/cnn_dm/evaluate.sh",
        "summarization/cnn_dm/prepare.sh",
    ):
        proc = recipe(script, "--help", env={})
        assert proc.returncode == 0, (script, proc.stderr)
        assert proc.stdout.lstrip().startswith(("Fine-tune", "Summarise", "Prepare")), (script, proc.stdout[:200])
        assert "set -euo pipefail" not in proc.stdout and "#!" not in proc.stdout


@pytest.mark.slow
def test_train_sh_runs(tmp_path, synthetic_data):
    os.symlink(synthetic_data, tmp_path / "RTE-bin")
    proc = subprocess.run(
        ["bash", TRAIN_SH, "RTE", "r4f", "2", str(tmp_path / "save"), "--", *TINY],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GLUE_BIN": str(tmp_path), "ROBERTA": "", "PRECISION": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = fairseq_logs(proc.stdout + proc.stderr)["train"][-1]
    assert int(final["train_num_updates"]) == 4 and float(final["train_symm_kl"]) > 0
    assert (tmp_path / "save" / "checkpoint_best.pt").exists()


@pytest.mark.slow
def test_glue_yaml_runs(tmp_path, synthetic_data):
    proc = run_fairseq(
        "fairseq-hydra-train",
        "--config-dir",
        os.path.join(REPO, "configs", "glue"),
        "--config-name",
        "rte_r4f",
        f"task.data={synthetic_data}",
        f"common.user_dir={os.path.join(REPO, 'fairseq_r3f')}",
        f"checkpoint.save_dir={tmp_path / 'ckpt'}",
        "checkpoint.finetune_from_model=null",
        "common.amp=false",
        "common.cpu=true",
        "+model.encoder_layers=2",
        "+model.encoder_embed_dim=64",
        "+model.encoder_ffn_embed_dim=128",
        "+model.encoder_attention_heads=2",
        "task.max_positions=64",
        "optimization.max_update=3",
        "dataset.num_workers=0",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        cwd=str(tmp_path),
    )
    output = proc.stdout + proc.stderr
    final = fairseq_logs(output)["train"][-1]
    assert int(final["train_num_updates"]) == 3 and float(final["train_symm_kl"]) > 0
    assert "R4F: spectral norm" in output


def test_sweep_report_columns_follow_train_sh():
    """The sweep's report reads, per task, the metric and subsets train.sh selects checkpoints by."""
    from r3f_experiments import results

    for task in results.TASKS:
        flags = dry_run(task, "std")
        columns = results.columns_for(task, {})
        assert {c.name for c in columns} == {flags["best_checkpoint_metric"]}, task
        assert [c.subset for c in columns] == flags["valid_subset"].split(","), task


@pytest.mark.slow
def test_train_sh_starts_from_the_pretrained_model_then_resumes(tmp_path, synthetic_data):
    """The first launch loads ROBERTA (--finetune-from-model: fresh optimizer and data); a rerun
    after a kill continues from SAVE_DIR/checkpoint_last.pt instead of starting again."""
    os.symlink(synthetic_data, tmp_path / "RTE-bin")
    env = {"GLUE_BIN": str(tmp_path), "ROBERTA": ""}
    pretrained = tmp_path / "pretrained"
    assert recipe("glue/train.sh", "RTE", "std", "1", str(pretrained), "--", *TINY, env=env).returncode == 0
    save, env["ROBERTA"] = tmp_path / "save", str(pretrained / "checkpoint_last.pt")
    two = [*TINY, "--max-update", "2"]
    first = recipe("glue/train.sh", "RTE", "r3f", "1", str(save), "--", *two, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    output = first.stdout + first.stderr
    assert f"loading pretrained model from {pretrained / 'checkpoint_last.pt'}" in output
    assert int(fairseq_logs(output)["train"][-1]["train_num_updates"]) == 2
    rerun = recipe("glue/train.sh", "RTE", "r3f", "1", str(save), "--", *TINY, env=env)  # --max-update 4
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    output = rerun.stdout + rerun.stderr
    assert f"Loaded checkpoint {save / 'checkpoint_last.pt'} (epoch" in output and "@ 2 updates)" in output
    assert "loading pretrained model" not in output
    assert int(fairseq_logs(output)["train"][-1]["train_num_updates"]) == 4


@pytest.mark.slow
def test_save_dir_holds_one_run_and_is_refused_to_another(tmp_path, synthetic_data):
    """fairseq resumes from SAVE_DIR/checkpoint_last.pt whatever it was trained with: pointed at a
    SAVE_DIR that holds another method's, task's or seed's run (or the same run with other
    settings), train.sh once went on training that run. Now it refuses before fairseq starts, naming
    both runs, and leaves the folder as it is; RESUME_ANYWAY=1 goes on with changed settings."""
    for task in ("RTE", "MRPC"):
        os.symlink(synthetic_data, tmp_path / f"{task}-bin")
    env = {"GLUE_BIN": str(tmp_path), "ROBERTA": ""}
    save = tmp_path / "save"
    assert recipe("glue/train.sh", "RTE", "std", "1", str(save), "--", *TINY, env=env).returncode == 0
    record = (save / "recipe_run.txt").read_text()
    assert "run glue RTE std\nseed 1\n" in record and "--criterion sentence_prediction " in record

    def files():
        return {p.name: p.stat().st_mtime_ns for p in save.iterdir() if p.name != ".lock"}

    before = files()
    for args, holds in (
        (["RTE", "r3f", "1"], "glue RTE r3f seed 1"),  # another method
        (["MRPC", "std", "1"], "glue MRPC std seed 1"),  # another task
        (["RTE", "std", "2"], "glue RTE std seed 2"),  # another seed
    ):
        proc = recipe("glue/train.sh", *args, str(save), "--", *TINY, env=env)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert f"SAVE_DIR={save} holds the run glue RTE std seed 1 ({save / 'recipe_run.txt'}), not {holds}" in (
            proc.stderr
        )
        assert "Loaded checkpoint" not in proc.stdout + proc.stderr
    # the same run with another learning rate; a longer --max-update alone is a resume (test above)
    changed = recipe("glue/train.sh", "RTE", "std", "1", str(save), "--", *TINY, "--lr", "3e-3", env=env)
    assert changed.returncode == 2
    assert f"SAVE_DIR={save} holds glue RTE std seed 1 trained with other settings" in changed.stderr
    assert "--lr: 1e-5 in the record, 3e-3 now" in changed.stderr and "RESUME_ANYWAY=1" in changed.stderr
    assert files() == before  # nothing written
    # checkpoints without a record (a folder written before records were kept) are not adopted silently
    (save / "recipe_run.txt").unlink()
    proc = recipe("glue/train.sh", "RTE", "r3f", "1", str(save), "--", *TINY, env=env)
    assert proc.returncode == 2 and "checkpoint_best.pt, checkpoint_last.pt but no recipe_run.txt" in proc.stderr
    assert not (save / "recipe_run.txt").exists()
    longer = [*TINY, "--max-update", "6"]
    anyway = recipe("glue/train.sh", "RTE", "std", "1", str(save), "--", *longer, env={**env, "RESUME_ANYWAY": "1"})
    assert anyway.returncode == 0, anyway.stderr[-3000:]
    assert f"Loaded checkpoint {save / 'checkpoint_last.pt'}" in anyway.stdout + anyway.stderr
    assert "run glue RTE std\nseed 1\n" in (save / "recipe_run.txt").read_text()


def test_a_second_run_into_a_save_dir_in_use_is_refused_naming_the_holder(tmp_path, synthetic_data):
    """Two recipes writing checkpoints into one folder would overwrite each other's: while a run
    trains, its fairseq-train process (the pid train.sh started as) holds SAVE_DIR/.lock, and a
    second train.sh into that SAVE_DIR, even the same run, is refused naming that pid."""
    from r3f_experiments import runs

    os.symlink(synthetic_data, tmp_path / "RTE-bin")
    env = {**os.environ, "GLUE_BIN": str(tmp_path), "ROBERTA": "", "PRECISION": "", "OMP_NUM_THREADS": "1"}
    save = tmp_path / "save"
    long = [*TINY, "--max-update", "100000", "--total-num-update", "100000"]
    first = subprocess.Popen(
        ["bash", TRAIN_SH, "RTE", "std", "1", str(save), "--", *long],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with open(f"/proc/{first.pid}/cmdline", "rb") as f:
                if b"fairseq-train" in f.read():
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("train.sh did not start fairseq-train")
        second = recipe("glue/train.sh", "RTE", "std", "1", str(save), "--", *long, env=env)
        assert second.returncode == 2
        assert f"SAVE_DIR={save} is in use by glue RTE std seed 1 (pid {first.pid}, since" in second.stderr
        assert "one run per folder at a time" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=60)
    with runs.folder_lock(str(save), "test"):  # free again once the run has ended
        pass


def test_fairseq_train_is_found_on_path_when_not_beside_the_interpreter(tmp_path):
    """fairseq installed with pip --target puts its console scripts apart from the interpreter:
    the recipe then runs the fairseq-train on PATH; beside the interpreter it is preferred."""
    import sys

    interpreter = tmp_path / "python" / "python3"
    interpreter.parent.mkdir()
    interpreter.symlink_to(sys.executable)  # sys.executable then names this folder, without fairseq-train
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "fairseq-train").write_text("#!/bin/sh\n")
    (tools / "fairseq-train").chmod(0o755)

    def first_word(python, path):
        env = {**os.environ, "DRY_RUN": "1", "PRECISION": "", "PYTHON": str(python), "PATH": path}
        proc = subprocess.run(
            ["bash", TRAIN_SH, "RTE", "std", "1", "/tmp/save"], capture_output=True, text=True, env=env, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        return shlex.split(proc.stdout)[0]

    path = f"{tools}:{os.environ['PATH']}"
    assert first_word(interpreter, path) == str(tools / "fairseq-train")
    assert first_word(sys.executable, path) == os.path.join(os.path.dirname(sys.executable), "fairseq-train")


def readme_command(tool):
    """The README's command line that starts with TOOL: its continuation lines joined, its comment dropped."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        lines = f.read().split("\n" + tool + " ", 1)[1].splitlines()
    words = [tool]
    for line in lines:
        code = line.split(" #", 1)[0].rstrip()
        words += shlex.split(code.rstrip("\\"))
        if not code.endswith("\\"):
            return words
    raise AssertionError(f"README: {tool}'s command does not end")


@pytest.mark.slow
def test_readme_dev_accuracy_command_scores_every_example(tmp_path):
    """The README's fairseq-validate line, run as written (in a folder laid out as its commands
    leave it) on a dev set of 45 examples: all 45 are scored. With fairseq's default
    --required-batch-size-multiple 8, the last batch (5 of --batch-size 8) was dropped."""
    from r3f_experiments.data.synthetic import make_task

    data = make_task(str(tmp_path / "task"), n_train=64, n_valid=45, seed=3)
    os.makedirs(tmp_path / "glue_bin")
    os.symlink(data, tmp_path / "glue_bin" / "RTE-bin")
    os.symlink(USER_DIR, tmp_path / "fairseq_r3f")
    proc = subprocess.run(
        ["bash", TRAIN_SH, "RTE", "r3f", "1", "checkpoints/rte_r3f", "--", *TINY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GLUE_BIN": "glue_bin", "ROBERTA": "", "PRECISION": "", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    command = readme_command("fairseq-validate")
    assert "checkpoints/rte_r3f/checkpoint_best.pt" in command and "glue_bin/RTE-bin" in command
    proc = run_fairseq(*command, "--cpu", "--num-workers", "0", "--log-format", "json", cwd=tmp_path)
    valid = parse_valid_subsets(proc.stdout + proc.stderr)["valid"][-1]
    assert float(valid["valid_bsz"]) == 45
