"""Probing for representational collapse (paper Sec. 4): the task sentence_prediction_probe and
r3f_experiments.probing, run for real (train.sh -> fairseq-train) on tiny synthetic tasks that share
one dictionary. One driver run (a 3-stage R4F chain with a probe after every stage) feeds most
tests; the gradient and checkpoint tests then use fairseq's Trainer in-process on its outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.trainer import Trainer

import fairseq_r3f  # noqa: F401  (registers sentence_prediction_probe)
from tests.helpers import REPO, TINY_ROBERTA, build_in_process, tiny_recipe_flags, valid_batch

DRIVER = [sys.executable, "-m", "r3f_experiments.probing"]
HEAD = "sentence_classification_head"
CHAIN = {"SST-2": "sentiment", "QNLI": "topic", "RTE": "first_cue"}  # GLUE name -> synthetic rule
TINY = [
    *tiny_recipe_flags(6),
    "--lr",
    "3e-3",
    "--batch-size",
    "16",
    "--log-interval",
    "2",
]
PROBE_UPDATES = "--max-update 30 --total-num-update 30"  # 3 epochs: 3 validations per probe
PROBE = ["--task", "sentence_prediction_probe", "--criterion", "sentence_prediction"]


def drive(*args, env):
    proc = subprocess.run(
        [*DRIVER, *args], capture_output=True, text=True, timeout=400, env={**os.environ, "OMP_NUM_THREADS": "1", **env}
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def glue_bin(tmp_path_factory):
    """Three synthetic tasks (different labelling rules, one dictionary) named as GLUE tasks."""
    from r3f_experiments.data.synthetic import make_tasks

    root = tmp_path_factory.mktemp("probing")
    made = make_tasks(str(root / "data"), list(CHAIN.values()), n_train=160, n_valid=64, seed=11)
    glue = root / "glue"
    glue.mkdir()
    for name, rule in CHAIN.items():
        os.symlink(made[rule], glue / f"{name}-bin")
    return str(glue)


@pytest.fixture(scope="module")
def chain(glue_bin, tmp_path_factory):
    """r3f_experiments.probing sequential: SST-2 -> QNLI -> RTE with R4F, probing SST-2 after each stage."""
    out = str(tmp_path_factory.mktemp("probing_out"))
    env = {"GLUE_BIN": glue_bin, "ROBERTA": "", "PRECISION": ""}
    stdout = drive(
        "sequential",
        "--out-dir",
        out,
        "--methods",
        "r4f",
        "--chain",
        *CHAIN,
        "--save-probes",
        "--probe-backend",
        "fairseq",
        "--probe-flags",
        PROBE_UPDATES,
        "--",
        *TINY,
        env=env,
    )
    run_dir = os.path.join(out, "sequential", "r4f", "seed1")
    stages = [os.path.join(run_dir, f"stage{i}-{t}") for i, t in enumerate(CHAIN, 1)]
    return {"out": out, "env": env, "stdout": stdout, "stages": stages, "glue": glue_bin}


def encoder_state(path):
    model = checkpoint_utils.load_checkpoint_to_cpu(path)["model"]
    return {k: v for k, v in model.items() if k.startswith("encoder.")}


@pytest.mark.slow
def test_chain_reports_a_probe_score_per_stage(chain):
    with open(os.path.join(chain["out"], "sequential", "report.json")) as f:
        report = json.load(f)
    records = sorted(report["records"], key=lambda r: r["position"])
    assert [(r["position"], r["stage_task"], r["probe_task"]) for r in records] == [
        (1, "SST-2", "SST-2"),
        (2, "QNLI", "SST-2"),
        (3, "RTE", "SST-2"),
    ]
    for r in records:
        assert r["backend"] == "fairseq"
        valid = [line for line in open(os.path.join(r["probe_dir"], "train.log")) if '"valid_accuracy"' in line]
        assert valid and 0 <= r["accuracy"] <= 100
        assert r["accuracy"] == max(float(json.loads(line[line.index("{") :])["valid_accuracy"]) for line in valid)
    (row,) = report["summary"]
    assert row["method"] == "r4f" and row["probes"] == 3
    assert row["mean_probe_score"] == pytest.approx(sum(r["accuracy"] for r in records) / 3)
    assert row["source_drop"] == pytest.approx(records[0]["accuracy"] - records[2]["accuracy"])
    summary = open(os.path.join(chain["out"], "sequential", "summary.md")).read()
    assert "| r4f |" in summary and "SST-2 drop" in summary
    with open(os.path.join(chain["out"], "sequential", "figure4.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    # every later stage started from the previous stage's best checkpoint, head removed
    for prev, stage in zip(chain["stages"], chain["stages"][1:]):
        log = open(os.path.join(stage, "train.log")).read()
        assert f"Loaded checkpoint {stage}/start.pt" in log and not os.path.exists(os.path.join(stage, "start.pt"))
        assert any(
            not torch.equal(a, encoder_state(os.path.join(stage, "checkpoint_best.pt"))[k])
            for k, a in encoder_state(os.path.join(prev, "checkpoint_best.pt")).items()
        )

    # resumable: a second run finds every stage and probe finished and trains nothing
    again = drive(
        "sequential",
        "--out-dir",
        chain["out"],
        "--methods",
        "r4f",
        "--chain",
        *CHAIN,
        "--probe-backend",
        "fairseq",
        "--",
        *TINY,
        env=chain["env"],
    )
    assert again.count("skipped (finished)") == 3 and ": fine-tuning " not in again and "probe SST-2 done" not in again


@pytest.mark.slow
def test_probing_an_r4f_checkpoint_leaves_its_encoder_bit_identical(chain):
    for stage in chain["stages"]:
        source = checkpoint_utils.load_checkpoint_to_cpu(os.path.join(stage, "checkpoint_best.pt"))["model"]
        assert any(".parametrizations.weight.original" in k for k in source)  # an R4F head was trained
        probe_dir = os.path.join(stage, "probe-SST-2")
        probe = checkpoint_utils.load_checkpoint_to_cpu(os.path.join(probe_dir, "checkpoint_last.pt"))["model"]
        source_encoder = {k: v for k, v in source.items() if k.startswith("encoder.")}
        assert source_encoder.keys() == {k for k in probe if k.startswith("encoder.")}
        assert all(torch.equal(probe[k], v) for k, v in source_encoder.items())
        # the R4F head is gone; the probe is one linear layer (64 x 2 + 2 trained numbers)
        assert sorted(k for k in probe if k.startswith("classification_heads.")) == [
            f"classification_heads.{HEAD}.{n}"
            for n in ("dense.bias", "dense.weight", "out_proj.bias", "out_proj.weight")
        ]
        log = open(os.path.join(probe_dir, "train.log")).read()
        assert "(num. trained: 130)" in log and "classification-head tensors discarded" in log


@pytest.mark.slow
def test_only_the_probe_layer_gets_gradients_and_dropout_stays_off(chain, tmp_path):
    source = os.path.join(chain["stages"][0], "checkpoint_best.pt")
    data = os.path.join(chain["glue"], "QNLI-bin")
    cfg, task, model, criterion = build_in_process(
        data,
        *TINY_ROBERTA,
        *PROBE,
        "--probe-checkpoint",
        source,
        "--dropout",
        "0.3",
        "--attention-dropout",
        "0.3",
        "--save-dir",
        str(tmp_path),
    )
    head = model.classification_heads[HEAD]
    trainer = Trainer(cfg, task, model, criterion)
    assert {id(p) for p in trainer.optimizer.params} == {id(head.out_proj.weight), id(head.out_proj.bias)}

    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    assert all(torch.equal(encoder_state(source)[f"encoder.{k}"], v) for k, v in encoder_before.items())
    head_before = head.out_proj.weight.detach().clone()
    sample = valid_batch(task, size=16)
    for _ in range(3):
        trainer.train_step([sample])
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is None for p in head.dense.parameters())
    assert head.out_proj.weight.grad is not None and head.out_proj.weight.grad.abs().sum() > 0
    assert not torch.equal(head.out_proj.weight, head_before)
    assert all(torch.equal(encoder_before[k], v) for k, v in model.encoder.state_dict().items())

    model.train()  # what fairseq's trainer calls before every step
    assert head.training and not any(m.training for m in model.encoder.modules())
    with torch.no_grad():
        a = model(**sample["net_input"], features_only=True, classification_head_name=HEAD)[0]
        b = model(**sample["net_input"], features_only=True, classification_head_name=HEAD)[0]
    assert torch.equal(a, b)  # dropout 0.3 is configured, but the encoder runs without it

    # the probe's own checkpoint reloads without reading --probe-checkpoint again
    path = str(tmp_path / "probe.pt")
    trainer.consolidate_optimizer()  # as fairseq's checkpoint_utils.save_checkpoint does first
    trainer.save_checkpoint(path, {})
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task(
        [path], arg_overrides={"data": data, "probe_checkpoint": str(tmp_path / "gone.pt")}
    )
    reloaded = models[0].eval()
    with torch.no_grad():
        c = reloaded(**sample["net_input"], features_only=True, classification_head_name=HEAD)[0]
    assert torch.equal(a, c)
    assert not any(p.requires_grad for p in reloaded.encoder.parameters())


@pytest.mark.slow
def test_bad_probe_flags_are_refused(chain):
    source = os.path.join(chain["stages"][0], "checkpoint_best.pt")
    data = os.path.join(chain["glue"], "SST-2-bin")
    with pytest.raises(ValueError, match="needs --probe-checkpoint"):
        build_in_process(data, *TINY_ROBERTA, *PROBE)
    with pytest.raises(FileNotFoundError, match="no_such.pt: no such file"):
        build_in_process(data, *TINY_ROBERTA, *PROBE, "--probe-checkpoint", "/nonexistent/no_such.pt")
    with pytest.raises(ValueError, match="encoder_embed_dim=64"):
        build_in_process(data, *TINY_ROBERTA, *PROBE, "--probe-checkpoint", source, "--encoder-embed-dim", "32")
    with pytest.raises(ValueError, match="drop --spectral-norm-classification-head"):
        build_in_process(
            data, *TINY_ROBERTA, *PROBE, "--probe-checkpoint", source, "--spectral-norm-classification-head"
        )


def test_synthetic_tasks_share_one_dictionary_and_differ_in_labels(glue_bin):
    from r3f_experiments.data.synthetic import RULES

    dicts = {open(os.path.join(glue_bin, f"{name}-bin", "input0", "dict.txt")).read() for name in CHAIN}
    assert len(dicts) == 1
    for name, rule in CHAIN.items():
        raw = os.path.join(os.path.dirname(os.path.realpath(os.path.join(glue_bin, f"{name}-bin"))), "raw")
        sentences = open(os.path.join(raw, "train.input0")).read().split("\n")[:-1]
        labels = [int(y) for y in open(os.path.join(raw, "train.label")).read().split()]
        for other_rule, rule_fn in RULES.items():
            agree = sum(rule_fn(s.split()) == y for s, y in zip(sentences, labels)) / len(labels)
            assert agree == 1.0 if other_rule == rule else agree < 0.9, (rule, other_rule, agree)
        assert 0.3 < sum(labels) / len(labels) < 0.7


def test_methods_come_from_the_glue_recipes():
    from r3f_experiments import probing as driver
    from r3f_experiments.recipes import glue

    default = driver.resolve_methods(None)
    assert default == driver.METHOD_CANDIDATES and set(default) <= set(glue.METHODS)
    assert driver.resolve_methods(["stdpp", "r4f", "rdrop"]) == ["std++", "r4f", "rdrop"]
    with pytest.raises(SystemExit, match="unknown method"):
        driver.resolve_methods(["nonsense"])
    stages = driver.plan_cyclic(["A", "B"], 3)
    assert [(s.cycle, s.position, s.task, s.probes) for s in stages if s.probes] == [
        (1, 2, "B", ("A", "B")),
        (2, 4, "B", ("A", "B")),
        (3, 6, "B", ("A", "B")),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["cross-task", "cyclic"])
def test_cross_task_and_cyclic_reports(chain, experiment, tmp_path):
    """Figures 3 and 5's reports, from the chain's real probe logs laid out as those experiments."""
    from r3f_experiments import probing as driver

    logs = [os.path.join(stage, "probe-SST-2", "train.log") for stage in chain["stages"]]
    if experiment == "cross-task":
        stages = driver.plan_cross_task("SST-2", ["QNLI", "RTE", "SST-2"])
    else:
        stages = driver.plan_cyclic(["QNLI", "SST-2"], 2)
    exp_dir = tmp_path / experiment
    exp_dir.mkdir()
    (exp_dir / "plan.json").write_text(json.dumps({"experiment": experiment, "stages": [s._asdict() for s in stages]}))
    placed = {}
    for stage in stages:
        for task in stage.probes:
            log = logs[len(placed) % len(logs)]
            target = exp_dir / "r3f" / "seed1" / stage.name / f"probe-{task}"
            target.mkdir(parents=True)
            (target / "train.log").write_text(open(log).read())
            placed[(stage.position, task)] = driver.probe_score(os.path.dirname(log), "SST-2")["accuracy"]
    driver.report(str(exp_dir))
    report = json.loads((exp_dir / "report.json").read_text())
    assert {(r["position"], r["probe_task"]): r["accuracy"] for r in report["records"]} == placed
    (row,) = report["summary"]
    assert row["mean_probe_score"] == pytest.approx(sum(placed.values()) / len(placed))
    if experiment == "cyclic":  # the source (first task of the chain) probed after cycles 1 and 2
        assert row["source_drop"] == pytest.approx(placed[(2, "QNLI")] - placed[(4, "QNLI")])
    else:
        assert row["source_drop"] is None
    figure = exp_dir / ("figure3.png" if experiment == "cross-task" else "figure5.png")
    assert figure.read_bytes()[:4] == b"\x89PNG"


def cross_task_probes(exp_dir, scores):
    """A cross-task experiment folder (SST-2 -> CoLA) holding feature probes of the given CoLA
    MCC per method and seed, as the driver leaves them."""
    from r3f_experiments import probing as driver

    stages = [
        driver.Stage("stage0-pretrained", "", 0, 0, ("CoLA",)),
        driver.Stage("stage1-SST-2", "SST-2", 1, 1, ("CoLA",)),
    ]
    exp_dir.mkdir(parents=True)
    (exp_dir / "plan.json").write_text(
        json.dumps({"experiment": "cross-task", "stages": [s._asdict() for s in stages]})
    )
    for method, values in scores.items():
        for seed, value in enumerate(values, 1):
            stage = stages[0] if method == "pretrained" else stages[1]
            probe_dir = exp_dir / method / f"seed{seed}" / stage.name / "probe-CoLA"
            probe_dir.mkdir(parents=True)
            record = {"accuracy": 69.0 + seed / 10, "update": 10, "metric": "mcc", "metric_value": value}
            (probe_dir / "probe.json").write_text(json.dumps({**record, "metric_update": 20, "pooling": "bos"}))
    return exp_dir


def test_a_report_by_the_task_metric_reads_each_probe_s_metric(tmp_path):
    """probing report --score metric: the probes' metric values (CoLA MCC), not their accuracy, in
    files of their own beside the accuracy report."""
    from r3f_experiments import probing as driver

    mcc = {"pretrained": [10.0, 11.0, 9.0], "std": [6.0, 7.0, 6.5], "r4f": [9.5, 11.5, 10.0]}
    exp_dir = cross_task_probes(tmp_path / "cross-task", mcc)
    driver.report(str(exp_dir), no_plots=True)
    driver.report(str(exp_dir), score="metric")
    with open(exp_dir / "report-metric.json") as f:
        by_metric = json.load(f)
    with open(exp_dir / "report.json") as f:
        by_accuracy = json.load(f)
    rows = {r["method"]: r for r in by_metric["table"]}
    assert rows["std"]["mean"] == pytest.approx(6.5) and rows["r4f"]["mean"] == pytest.approx(31 / 3)
    assert rows["r4f"]["vs_std"]["mean"] == pytest.approx(31 / 3 - 6.5)
    assert {r["method"]: r["mean"] for r in by_accuracy["table"]}["std"] == pytest.approx(69.2)
    assert "probe score, the task's metric (CoLA mcc)" in (exp_dir / "summary-metric.md").read_text()
    assert "probe accuracy (%)" in (exp_dir / "summary.md").read_text()
    assert (exp_dir / "figure3-metric.png").read_bytes()[:4] == b"\x89PNG" and not (exp_dir / "figure3.png").exists()
    header = (exp_dir / "report-metric.tsv").read_text().splitlines()[0].split("\t")
    assert header[-4:] == ["metric", "metric_value", "metric_update", "backend"]


def test_earlier_probes_join_a_report_when_the_pretrained_probes_agree(tmp_path, capsys):
    """probing report --add-records: std's probes from an earlier report.tsv pair with a new
    method's probes; the pre-trained probes found in both count once; a pre-trained probe that
    scored otherwise, a stage outside the plan or a file that is no report are errors."""
    from r3f_experiments import probing as driver

    pretrained = [10.0, 11.0, 9.0]
    earlier = cross_task_probes(tmp_path / "earlier" / "cross-task", {"pretrained": pretrained, "std": [6.0, 7.0, 6.5]})
    driver.report(str(earlier), no_plots=True, score="metric")
    later = cross_task_probes(tmp_path / "later" / "cross-task", {"pretrained": pretrained, "rdrop": [8.0, 7.5, 9.0]})
    earlier_tsv = str(earlier / "report-metric.tsv")
    driver.report(str(later), no_plots=True, score="metric", add_records=[earlier_tsv])
    assert "3 probes added, 3 equal to probes found again" in capsys.readouterr().out
    rows = {r["method"]: r for r in json.loads((later / "report-metric.json").read_text())["table"]}
    assert rows["pretrained"]["n"] == 3 and rows["std"]["n"] == 3
    assert rows["rdrop"]["vs_std"]["mean"] == pytest.approx(8.1666667 - 6.5)
    assert len((later / "report-metric.tsv").read_text().splitlines()) == 1 + 9

    moved = tmp_path / "moved.tsv"
    moved.write_text(Path(earlier_tsv).read_text().replace("\t10.0\t", "\t10.5\t", 1))
    with pytest.raises(driver.RecordsError, match="pretrained seed 1 stage0-pretrained probe CoLA.*not run alike"):
        driver.report(str(later), no_plots=True, score="metric", add_records=[str(moved)])
    outside = tmp_path / "outside.tsv"
    outside.write_text(Path(earlier_tsv).read_text().replace("stage1-SST-2", "stage1-MRPC"))
    with pytest.raises(driver.RecordsError, match="stage stage1-MRPC is not a stage of this experiment"):
        driver.report(str(later), no_plots=True, add_records=[str(outside)])
    result = subprocess.run(
        [
            *DRIVER,
            "report",
            "--out-dir",
            str(tmp_path / "later"),
            "--no-plots",
            "--add-records",
            str(later / "plan.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "not a probing report.tsv" in result.stderr, result.stderr


def test_a_report_never_drops_the_probes_of_the_report_it_replaces(tmp_path):
    """A report re-rendered without the earlier probes it had joined is refused, naming them, and leaves
    the report as it was; with the earlier report joined, or --replace, it is written."""
    from r3f_experiments import probing as driver

    pretrained = [10.0, 11.0, 9.0]
    earlier = cross_task_probes(tmp_path / "earlier" / "cross-task", {"pretrained": pretrained, "std": [6.0, 7.0, 6.5]})
    driver.report(str(earlier), no_plots=True)
    kept = tmp_path / "earlier.tsv"
    kept.write_text((earlier / "report.tsv").read_text())
    later = cross_task_probes(tmp_path / "later" / "cross-task", {"pretrained": pretrained, "rdrop": [8.0, 7.5, 9.0]})
    driver.report(str(later), no_plots=True, add_records=[str(kept)])
    joined = (later / "report.tsv").read_text()
    with pytest.raises(
        driver.RecordsError, match="holds runs this report does not: std seed 1 stage1-SST-2 probe CoLA, "
    ):
        driver.report(str(later), no_plots=True)
    assert (later / "report.tsv").read_text() == joined
    result = subprocess.run(
        [*DRIVER, "report", "--out-dir", str(tmp_path / "later"), "--no-plots"], capture_output=True, text=True
    )
    assert result.returncode == 1 and "--replace" in result.stderr, result.stderr
    driver.report(str(later), no_plots=True, add_records=[str(later / "report.tsv")])
    assert (later / "report.tsv").read_text() == joined
    driver.report(str(later), no_plots=True, replace=True)
    assert len((later / "report.tsv").read_text().splitlines()) == 1 + 6


@pytest.mark.slow
def test_probe_loads_the_published_roberta_key_layout(chain, tmp_path):
    """fairseq < 0.10 checkpoints (the published roberta.*/model.pt) name the encoder `decoder.`;
    fairseq's own upgrade renames it, and the source head is dropped whatever its format."""
    source = os.path.join(chain["stages"][0], "checkpoint_best.pt")
    state = checkpoint_utils.load_checkpoint_to_cpu(source)
    state["model"] = {
        ("decoder." + k[len("encoder.") :] if k.startswith("encoder.") else k): v for k, v in state["model"].items()
    }
    old_layout = str(tmp_path / "old_layout.pt")
    torch.save(state, old_layout)
    _, _, model, _ = build_in_process(
        os.path.join(chain["glue"], "RTE-bin"), *TINY_ROBERTA, *PROBE, "--probe-checkpoint", old_layout
    )
    expected = encoder_state(source)
    assert all(torch.equal(expected[f"encoder.{k}"], v) for k, v in model.encoder.state_dict().items())


# ---- probes on cached features (r3f_experiments.feature_probe) ------------------------------------


def probe_env(chain, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PRESET", "ROBERTA", "PROBE_CHECKPOINT")}
    return {**env, "GLUE_BIN": chain["glue"], "PRECISION": "", "OMP_NUM_THREADS": "1", **extra}


@pytest.mark.slow
def test_cached_features_are_what_the_fairseq_probe_head_reads(chain, tmp_path, monkeypatch):
    from r3f_experiments import feature_probe

    for key, value in probe_env(chain).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PRESET", raising=False)
    source = os.path.join(chain["stages"][0], "checkpoint_best.pt")
    command = feature_probe.probe_command("QNLI", source, 1, str(tmp_path / "p"), [*TINY, *PROBE_UPDATES.split()])
    assert command[command.index("--task") + 1] == "sentence_prediction_probe"
    assert command[command.index("--probe-checkpoint") + 1] == source and "--finetune-from-model" not in command
    cfg, task, model = feature_probe.build_probe(command)
    assert feature_probe.schedule(cfg, 160) == (16, 30, 10)
    feats, targets = feature_probe.compute_features(task, model, "valid")
    sample = valid_batch(task, size=16)
    with torch.no_grad():
        logits = model(**sample["net_input"], classification_head_name=HEAD)[0]
    head = model.classification_heads[HEAD]
    ids = sample["id"]
    assert torch.allclose(head(feats[ids].unsqueeze(1)), logits, atol=1e-5)
    assert torch.equal(targets[ids], sample["target"].view(-1))
    # a subset is a fixed draw: the same rows whoever asks, a part of the whole
    part, part_targets = feature_probe.compute_features(task, model, "valid", examples=20)
    rows = feature_probe.subset(len(targets), 20)
    assert len(rows) == 20 and rows == feature_probe.subset(len(targets), 20)
    assert torch.allclose(part, feats[rows], atol=1e-5) and torch.equal(part_targets, targets[rows])
    # mean pooling: the mean of the final states over each example's tokens, padding left out
    pooled, pooled_targets = feature_probe.compute_features(task, model, "valid", pooling="mean")
    with torch.no_grad():
        states = model(**sample["net_input"], features_only=True)[0]
    tokens, pad = sample["net_input"]["src_tokens"], task.source_dictionary.pad()
    assert tokens.eq(pad).any()  # the batch holds padding: a mean over it would show
    for row, idx in enumerate(ids.tolist()):
        kept = tokens[row].ne(pad)
        assert torch.allclose(pooled[idx], states[row][kept].mean(0), atol=1e-5)
    assert torch.equal(pooled_targets, targets) and not torch.allclose(pooled, feats, atol=1e-3)


@pytest.mark.slow
def test_feature_probe_agrees_with_the_fairseq_probe_and_reuses_its_cache(chain, tmp_path, monkeypatch):
    from r3f_experiments import feature_probe

    for key, value in probe_env(chain).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PRESET", raising=False)
    cache = str(tmp_path / "cache")
    extra = [*TINY, *PROBE_UPDATES.split()]
    for stage in chain["stages"]:
        source = os.path.join(stage, "checkpoint_best.pt")
        first = feature_probe.run_probe(source, "SST-2", 1, str(tmp_path / "a"), cache, extra)
        assert first["updates"] == 30 and first["feature_seconds"] > 0
        # the fairseq probe of the same command (the chain's, seed 1): within 8 of 64 dev examples
        log = os.path.join(stage, "probe-SST-2", "train.log")
        fairseq_best = max(float(json_line["valid_accuracy"]) for json_line in valid_records(log))
        assert abs(first["accuracy"] - fairseq_best) <= 12.5, (stage, first["accuracy"], fairseq_best)
        again = feature_probe.run_probe(source, "SST-2", 1, str(tmp_path / "b"), cache, extra)
        assert again["feature_seconds"] == 0 and again["accuracy"] == first["accuracy"]
        with open(tmp_path / "b" / "probe.json") as f:
            assert json.load(f)["checkpoint"] == source
    assert len(os.listdir(cache)) == 2 * len(chain["stages"])  # train + valid per checkpoint
    feature_probe.run_probe(source, "SST-2", 1, str(tmp_path / "c"), cache, extra, train_examples=40)
    assert len(os.listdir(cache)) == 2 * len(chain["stages"]) + 1  # the subset's features: one more file


def valid_records(log):
    with open(log) as f:
        return [json.loads(line[line.index("{") :]) for line in f if '"valid_accuracy"' in line]


def finished_run(chain, runs, seed=1, log=True):
    """RUNS/SST-2/r4f/seedS/checkpoint_best.pt and its train.log, a sweep's layout, standing for the
    chain's first stage (``log=False``: the log cut before fairseq's closing line, a stopped run)."""
    run_dir = runs / "SST-2" / "r4f" / f"seed{seed}"
    run_dir.mkdir(parents=True)
    finetuned = str(run_dir / "checkpoint_best.pt")
    os.symlink(os.path.join(chain["stages"][0], "checkpoint_best.pt"), finetuned)
    with open(os.path.join(chain["stages"][0], "train.log")) as f:
        lines = f.readlines()
    kept = lines if log else [line for line in lines if "done training" not in line]
    (run_dir / "train.log").write_text("".join(kept))
    return finetuned


@pytest.mark.slow
def test_cross_task_probes_finished_runs_and_the_pretrained_encoder(chain, tmp_path):
    finetuned = finished_run(chain, tmp_path / "runs")
    pretrained = os.path.join(chain["stages"][1], "checkpoint_best.pt")  # any encoder stands in for one
    env = {"ROBERTA": pretrained, "GLUE_BIN": chain["glue"], "PRECISION": ""}
    out = str(tmp_path / "out")
    args = ["cross-task", "--out-dir", out, "--methods", "r4f", "--finetuned", str(tmp_path / "runs")]
    stdout = drive(*args, "--probe-flags", PROBE_UPDATES, "--", *TINY, env=env)
    assert ": fine-tuning " not in stdout
    with open(os.path.join(out, "cross-task", "report.json")) as f:
        report = json.load(f)
    # every other task in GLUE_BIN is probed, on the finished run's checkpoint and the pre-trained one
    assert sorted((r["method"], r["probe_task"], r["backend"]) for r in report["records"]) == [
        ("pretrained", "QNLI", "features"),
        ("pretrained", "RTE", "features"),
        ("r4f", "QNLI", "features"),
        ("r4f", "RTE", "features"),
    ]
    for r in report["records"]:
        with open(os.path.join(r["probe_dir"], "probe.json")) as f:
            probed = json.load(f)
        assert probed["checkpoint"] == (pretrained if r["method"] == "pretrained" else finetuned)
        assert probed["accuracy"] == r["accuracy"]
    assert {(row["probe"], row["method"], row["n"]) for row in report["table"]} == {
        ("RTE", "pretrained", 1),
        ("RTE", "r4f", 1),
        ("QNLI", "pretrained", 1),
        ("QNLI", "r4f", 1),
    }
    assert open(os.path.join(out, "cross-task", "figure3.png"), "rb").read(4) == b"\x89PNG"
    # the same chains side by side, each in a driver of its own: the same probes, the same scores
    side = str(tmp_path / "side")
    drive(*args, "--out-dir", side, "--jobs", "2", "--probe-flags", PROBE_UPDATES, "--", *TINY, env=env)
    with open(os.path.join(side, "cross-task", "report.json")) as f:
        parallel = json.load(f)
    score = lambda rs: sorted((r["method"], r["probe_task"], r["accuracy"]) for r in rs)  # noqa: E731
    assert score(parallel["records"]) == score(report["records"])
    assert all(os.path.isfile(os.path.join(side, "cross-task", m, "seed1", "chain.log")) for m in ("pretrained", "r4f"))
    # a seed without a finished run is named before anything runs
    proc = subprocess.run(
        [*DRIVER, *args, "--seeds", "1-2", "--out-dir", str(tmp_path / "out2"), "--", *TINY],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.returncode != 0 and "SST-2/r4f/seed2/checkpoint_best.pt" in proc.stderr
    assert not os.path.exists(tmp_path / "out2" / "cross-task" / "pretrained")
    # and so is a run without fairseq's closing line: its checkpoint_best.pt is only the best so far
    finished_run(chain, tmp_path / "runs", seed=2, log=False)
    proc = subprocess.run(
        [*DRIVER, *args, "--seeds", "1-2", "--out-dir", str(tmp_path / "out2"), "--", *TINY],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.returncode != 0 and "not finished" in proc.stderr, proc.stderr
    assert "SST-2/r4f/seed2" in proc.stderr and "seed1" not in proc.stderr
    assert not os.path.exists(tmp_path / "out2" / "cross-task" / "pretrained")
    # mean-pooled probes: their own features, named in the report; never mixed with <s> probes
    mean_out = str(tmp_path / "mean")
    drive(*args, "--out-dir", mean_out, "--probe-pooling", "mean", "--probe-flags", PROBE_UPDATES, "--", *TINY, env=env)
    with open(os.path.join(mean_out, "cross-task", "report.json")) as f:
        pooled = json.load(f)["records"]
    assert len(pooled) == 4 and {r["backend"] for r in pooled} == {"features, mean-pooled"}
    with open(os.path.join(pooled[0]["probe_dir"], "probe.json")) as f:
        assert json.load(f)["pooling"] == "mean"
    for refused, message in (
        ([*args, "--probe-pooling", "mean", "--", *TINY], "read bos-pooled features, not --probe-pooling mean"),
        (
            [*args, "--out-dir", mean_out, "--probe-backend", "fairseq", "--probe-pooling", "mean"],
            "is for --probe-backend features",
        ),
    ):
        proc = subprocess.run([*DRIVER, *refused], capture_output=True, text=True, env={**os.environ, **env})
        assert proc.returncode != 0 and message in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_chain_goes_on_from_finished_runs(chain, tmp_path):
    """sequential --finetuned RUNS: stage 1 is a finished run's checkpoint, probed, and stage 2 starts from it."""
    finetuned = finished_run(chain, tmp_path / "runs")
    out = str(tmp_path / "out")
    args = ["sequential", "--out-dir", out, "--methods", "r4f", "--chain", "SST-2", "QNLI", "--no-pretrained"]
    stdout = drive(
        *args, "--finetuned", str(tmp_path / "runs"), "--probe-flags", PROBE_UPDATES, "--", *TINY, env=chain["env"]
    )
    assert "fine-tuning SST-2" not in stdout and f"fine-tuning QNLI from {finetuned}" in stdout
    stage2 = os.path.join(out, "sequential", "r4f", "seed1", "stage2-QNLI")
    assert f"Loaded checkpoint {stage2}/start.pt" in open(os.path.join(stage2, "train.log")).read()
    with open(os.path.join(out, "sequential", "report.json")) as f:
        records = sorted(json.load(f)["records"], key=lambda r: r["position"])
    probed = []
    for r in records:
        with open(os.path.join(r["probe_dir"], "probe.json")) as f:
            probed.append(json.load(f)["checkpoint"])
    assert [(r["position"], r["probe_task"]) for r in records] == [(1, "SST-2"), (2, "SST-2")]
    assert probed == [finetuned, os.path.join(stage2, "checkpoint_best.pt")]


@pytest.mark.slow
def test_a_cyclic_chain_takes_the_sequential_chain_s_stages(chain, tmp_path):
    """cyclic --stages-from OUT/sequential: cycle 1 is the sequential chain's stages, probed, not
    trained again; with other settings nothing is taken."""
    sequential = os.path.join(chain["out"], "sequential")
    args = ["cyclic", "--methods", "r4f", "--chain", "SST-2", "QNLI", "--cycles", "1", "--no-pretrained"]
    args += ["--stages-from", sequential, "--probe-flags", PROBE_UPDATES]
    out = str(tmp_path / "out")
    stdout = drive(*args, "--out-dir", out, "--", *TINY, env=chain["env"])
    assert ": fine-tuning " not in stdout and stdout.count("(the same fine-tuning)") == 2, stdout
    with open(os.path.join(out, "cyclic", "report.json")) as f:
        records = json.load(f)["records"]
    assert {r["probe_task"] for r in records} == {"SST-2", "QNLI"}
    for r in records:
        with open(os.path.join(r["probe_dir"], "probe.json")) as f:
            assert json.load(f)["checkpoint"] == os.path.join(chain["stages"][1], "checkpoint_best.pt")
    # another learning rate: stage 1 differs, so stage 2 starts elsewhere; both are trained here
    other = str(tmp_path / "other")
    stdout = drive(*args, "--out-dir", other, "--finetune-flags", "--lr 1e-3", "--", *TINY, env=chain["env"])
    assert "(the same fine-tuning)" not in stdout and stdout.count(": fine-tuning ") == 2, stdout
    assert "(other settings: --lr: 3e-3 in the record, 1e-3 now)" in stdout, stdout
    assert f"(it started from {os.path.join(chain['stages'][0], 'checkpoint_best.pt')}, not " in stdout, stdout
    with open(os.path.join(other, "cyclic", "r4f", "seed1", "cycle1-stage2-QNLI", "started_from.json")) as f:
        started = json.load(f)
    assert started["checkpoint"].startswith(other) and len(started["sha256"]) == 64
    refused = subprocess.run(
        [*DRIVER, *args, "--out-dir", out, "--stages-from", str(tmp_path), "--", *TINY],
        capture_output=True,
        text=True,
        env={**os.environ, **chain["env"]},
    )
    assert refused.returncode != 0 and "no plan.json" in refused.stderr


@pytest.mark.slow
def test_train_sh_builds_the_probe_command_from_the_probed_checkpoint(chain, tmp_path):
    from r3f_experiments.recipes.glue import CONVERGED_PROBE_EPOCHS, CONVERGED_PROBE_LR

    source = os.path.join(chain["stages"][0], "checkpoint_best.pt")
    train_sh = os.path.join(REPO, "scripts", "glue", "train.sh")

    def dry(task_method, **env):
        return subprocess.run(
            ["bash", train_sh, *task_method, "1", str(tmp_path / "p")],
            capture_output=True,
            text=True,
            env=probe_env(chain, DRY_RUN="1", PRESET="converged", **env),
        )

    words = dry(["QNLI", "std"], PROBE_CHECKPOINT=source).stdout.split()
    assert words[words.index("--task") + 1] == "sentence_prediction_probe"
    assert words[words.index("--probe-checkpoint") + 1] == source and "--finetune-from-model" not in words
    assert words[words.index("--encoder-embed-dim") + 1] == "64"  # the model of the probed checkpoint
    assert words[words.index("--lr") + 1] == CONVERGED_PROBE_LR
    assert words[words.index("--max-epoch") + 1] == str(CONVERGED_PROBE_EPOCHS)
    assert words[words.index("--separator-token") + 1] == "2"
    refused = dry(["QNLI", "std"], PROBE_CHECKPOINT=source, ROBERTA=source)
    assert refused.returncode == 2 and "set ROBERTA= (empty)" in refused.stderr
    refused = dry(["QNLI", "r3f"], PROBE_CHECKPOINT=source)
    assert refused.returncode == 2 and "trains with METHOD std, not r3f" in refused.stderr

    # a checkpoint fine-tuned with BERT's pair layout (no separator token) keeps it in its probes
    state = torch.load(source, map_location="cpu", weights_only=False)
    state["cfg"]["task"]["separator_token"] = None
    bert_layout = str(tmp_path / "bert_layout.pt")
    torch.save(state, bert_layout)
    assert "--separator-token" not in dry(["QNLI", "std"], PROBE_CHECKPOINT=bert_layout).stdout.split()


def test_tasks_and_chain_come_from_glue_bin(tmp_path):
    from r3f_experiments import probing as driver

    for task in ("CoLA", "SST-2", "MRPC", "RTE", "WNLI"):
        (tmp_path / f"{task}-bin" / "input0").mkdir(parents=True)
        (tmp_path / f"{task}-bin" / "input0" / "dict.txt").write_text("a 1\n")
    (tmp_path / "QQP-bin").mkdir()  # not binarised: not a task
    present = driver.tasks_in(str(tmp_path))
    assert present == ["RTE", "MRPC", "CoLA", "SST-2", "WNLI"]
    assert driver.default_chain(present, "SST-2") == ["SST-2", "RTE", "MRPC", "CoLA"]
    assert driver.default_chain(present, "MRPC") == ["MRPC", "SST-2", "RTE", "CoLA"]
    with pytest.raises(SystemExit, match="holds no QNLI, QQP"):
        driver.check_tasks(["SST-2", "QNLI", "QQP"], present, str(tmp_path))
