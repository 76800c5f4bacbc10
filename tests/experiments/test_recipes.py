"""The recipes' hyper-parameter tables (r3f_experiments.recipes): the checked-in YAML configs are
what the tables give, the commands carry the paper's values, and bad names are refused with the
accepted ones named. (tests/e2e/test_glue_recipes.py runs train.sh and the YAML for real.)"""

import glob
import os
import shutil
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from r3f_experiments.recipes import glue, summarization, xnli
from r3f_experiments.recipes.__main__ import generated_configs
from r3f_experiments.recipes.__main__ import main as recipes_main
from tests.helpers import REPO

CONFIG_DIR = os.path.join(REPO, "configs")


def test_every_task_and_method_has_a_config():
    names = {os.path.relpath(c, CONFIG_DIR) for c in glob.glob(os.path.join(CONFIG_DIR, "*", "*.yaml"))}
    glue_names = {
        f"glue/{t}_{m}.yaml"
        for t in ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst_2")
        for m in ("std", "stdpp", "r3f", "r4f", "rdrop", "r3f_rel", "smart", "freelb")
    }
    summarization_names = {
        f"summarization/{d}_{m}.yaml" for d in ("cnn_dm", "gigaword", "reddit_tifu") for m in ("std", "r3f")
    }
    xnli_names = {f"xnli/xnli_{m}.yaml" for m in ("std", "r3f", "r4f")}
    assert names == glue_names | summarization_names | xnli_names == set(generated_configs())


def test_checked_in_configs_are_what_the_tables_give(tmp_path):
    assert recipes_main(["write-configs", "--check", CONFIG_DIR]) == 0
    # the check is not vacuous: a changed value, a missing file and a stray file are each reported
    copy = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, copy)
    rte = copy / "glue" / "rte_r3f.yaml"
    rte.write_text(rte.read_text().replace("lr: [1e-5]", "lr: [2e-5]"))
    (copy / "xnli" / "xnli_std.yaml").unlink()
    (copy / "summarization" / "old_name.yaml").write_text("{}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "r3f_experiments.recipes", "write-configs", "--check", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    for name in (
        "glue/rte_r3f.yaml: differs",
        "xnli/xnli_std.yaml: differs",
        "summarization/old_name.yaml: not generated",
    ):
        assert name in proc.stderr
    # writing repairs what differs and reports the stray file without deleting it
    assert recipes_main(["write-configs", str(copy)]) == 0
    assert rte.read_text() == open(os.path.join(CONFIG_DIR, "glue", "rte_r3f.yaml")).read()
    assert (copy / "xnli" / "xnli_std.yaml").exists()
    assert (copy / "summarization" / "old_name.yaml").exists()


@pytest.mark.parametrize(
    "family,names", [("glue", ("RTE", "r4f")), ("xnli", ("r3f",)), ("summarization", ("gigaword", "r3f"))]
)
def test_yaml_and_command_are_one_run(family, names):
    """Every flag of the command is in the YAML at the place fairseq's hydra config keeps it."""
    module = {"glue": glue, "xnli": xnli, "summarization": summarization}[family]
    cfg = OmegaConf.create(module.yaml_config(*names))
    settings = module.settings(*names, data="D", user_dir="U", pretrained="R")
    assert len([s for s in settings if s.flag]) > 30
    for s in settings:
        if s.flag == "--finetune-from-model":  # the user's pre-trained model: required on the command line
            assert OmegaConf.is_missing(cfg[s.group], s.key)
            continue
        value = cfg[s.group][s.key]
        value = value[0] if s.key in ("lr", "update_freq") else value
        if s.value is True:
            assert value is True, s.flag
        elif isinstance(s.value, int):
            assert value == s.value, s.flag
        else:
            try:
                assert float(value) == float(s.value), s.flag
            except ValueError:
                assert str(value) == s.value, s.flag


def test_paper_values_in_the_tables():
    """Spot checks against the paper's appendix, through the command a recipe runs."""

    def flags(argv):
        return {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}

    rte = flags(glue.command("RTE", "r3f", fairseq_train="FT", data="D", user_dir="U", pretrained=""))
    assert (rte["--lr"], rte["--max-update"], rte["--batch-size"], rte["--warmup-updates"]) == (
        "1e-5",
        "3120",
        "8",
        "187",
    )
    assert "--finetune-from-model" not in rte and "--restore-file" not in rte  # "" = random init
    cnn = flags(summarization.command("cnn_dm", "r3f", fairseq_train="FT", data="D", user_dir="U", pretrained="R"))
    assert (cnn["--max-tokens"], cnn["--max-update"], cnn["--warmup-updates"], cnn["--r3f-lambda"]) == (
        "1024",
        "80000",
        "1000",
        "1.0",
    )
    assert (cnn["--lr"], cnn["--clip-norm"], cnn["--adam-eps"]) == ("3e-5", "0.1", "1e-8")
    x = flags(xnli.command("std", fairseq_train="FT", data="D", user_dir="U", pretrained="R"))
    assert (x["--lr"], x["--max-update"], x["--num-classes"]) == ("3e-5", "450000", "3")
    assert summarization.generation_flags("cnn_dm")[:4] == ["--beam", "4", "--lenpen", "2.0"]


def test_bad_names_are_refused_naming_the_accepted_ones(capsys):
    cases = [
        (["glue", "STS-B", "r3f"], "unknown TASK 'STS-B'"),
        (["glue", "RTE", "pgd"], "unknown METHOD 'pgd'"),
        (["xnli", "smart"], "unknown METHOD 'smart' (std r3f r4f)"),
        (["summarization", "xsum", "std"], "unknown DATASET 'xsum' (cnn_dm gigaword reddit_tifu)"),
    ]
    for names, message in cases:
        assert recipes_main(["command", *names, "--fairseq-train", "F", "--data", "D", "--user-dir", "U"]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        recipes_main(
            ["command", "xnli", "r3f", "--fairseq-train", "F", "--data", "D", "--user-dir", "U", "--smart-lambda", "2"]
        )
    assert "--smart-lambda is for glue recipes only" in capsys.readouterr().err
