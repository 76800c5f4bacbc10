"""Summarization with R3F: the criterion's KL (pads, noise, normalisation) on data the recipe
prepares, and the CNN/DailyMail recipe end to end on a tiny BART (prepare -> train -> resume ->
fairseq-generate -> ROUGE), its YAML under fairseq-hydra-train and 2 workers."""

import json
import os
import random
import subprocess

import pytest
import torch
from omegaconf import OmegaConf

from r3f_experiments.fairseq_setup import TINY_BART_FLAGS
from tests.helpers import REPO, build_in_process, fairseq_logs, run_fairseq

RECIPE = os.path.join(REPO, "scripts", "summarization", "cnn_dm")
WORDS = [
    "the",
    "cat",
    "dog",
    "ran",
    "sat",
    "red",
    "big",
    "sun",
    "hat",
    "box",
    "fox",
    "old",
    "new",
    "cup",
    "map",
    "pen",
    "car",
    "bus",
    "toy",
    "bed",
]
SEQ2SEQ = [
    "--task",
    "translation",
    "--source-lang",
    "source",
    "--target-lang",
    "target",
    "--optimizer",
    "adam",
    "--lr",
    "1e-3",
    "--max-tokens",
    "4096",
    "--cpu",
    "--num-workers",
    "0",
    "--seed",
    "1",
    "--share-all-embeddings",
]
NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0"]


def write_jsonl(path, n, rng):
    """CNN/DailyMail-shaped records; the summary is the article's first four words."""
    with open(path, "w") as f:
        for _ in range(n):
            article = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
            f.write(
                json.dumps({"article": " ".join(article) + " .", "highlights": " ".join(article[:4]) + " ."}) + "\n"
            )


def run_script(script, *args, env=None, timeout=600):
    proc = subprocess.run(
        ["bash", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_bpe):
    """The recipe's prepare.sh on synthetic JSONL with a local toy GPT-2 BPE."""
    root = tmp_path_factory.mktemp("cnn_dm")
    rng = random.Random(0)
    os.makedirs(root / "jsonl")
    for split, n in (("train", 160), ("valid", 16), ("test", 6)):
        write_jsonl(root / "jsonl" / f"{split}.jsonl", n, rng)
    run_script(
        os.path.join(RECIPE, "prepare.sh"), str(root / "jsonl"), str(root / "data"), env={**tiny_bpe, "WORKERS": "1"}
    )
    return str(root / "data")


# ---- the criterion, in-process ---------------------------------------------------------------


def build(prepared, *flags):
    """(task, model, criterion) of a tiny BART with label_smoothed_cross_entropy_r3f."""
    torch.manual_seed(0)
    _, task, model, criterion = build_in_process(
        os.path.join(prepared, "bin"),
        *TINY_BART_FLAGS,
        "--criterion",
        "label_smoothed_cross_entropy_r3f",
        "--label-smoothing",
        "0.1",
        *flags,
        base=SEQ2SEQ,
    )
    task.load_dataset("valid")
    model.train()  # the noised pass runs in training mode only
    return task, model, criterion


def batch(task, indices):
    dataset = task.dataset("valid")
    return dataset.collater([dataset[i] for i in indices])


def run(criterion, model, sample, seed=0):
    torch.manual_seed(seed)  # the same noise draw for the same source batch
    _, sample_size, out = criterion(model, sample)
    return sample_size, out


def right_pad_targets(sample, extra, pad):
    """The same batch with ``extra`` more pad columns after every target."""
    padded = dict(sample, net_input=dict(sample["net_input"]))
    for holder, key in ((padded, "target"), (padded["net_input"], "prev_output_tokens")):
        t = holder[key]
        holder[key] = torch.cat([t, t.new_full((t.size(0), extra), pad)], dim=1)
    return padded


# ---- the recipe end to end ----------------------------------------------------------------------


@pytest.mark.slow
def test_pad_positions_do_not_change_symm_kl(prepared):
    task, model, criterion = build(prepared, "--eps", "1e-2", *NO_DROPOUT)
    sample = batch(task, range(6))
    padded = right_pad_targets(sample, 7, task.target_dictionary.pad())
    _, out = run(criterion, model, sample)
    _, out_padded = run(criterion, model, padded)
    assert out["symm_kl"] > 0
    assert out_padded["ntokens"] == out["ntokens"]
    assert out_padded["symm_kl"].item() == pytest.approx(out["symm_kl"].item(), rel=1e-5)
    assert out_padded["loss"].item() == pytest.approx(out["loss"].item(), rel=1e-5)

    # The reference's sum over every target position does depend on the padding.
    from fairseq_r3f.method.divergence import symmetric_kl

    def all_positions(s):
        torch.manual_seed(0)
        clean, noised, _ = criterion.perturbed_passes(model, s)
        return symmetric_kl(clean[0], noised[0]).sum().item()

    assert all_positions(padded) > 1.01 * all_positions(sample)


@pytest.mark.slow
def test_symm_kl_is_zero_without_noise_and_dropout_and_noise_reaches_encoder_only(prepared):
    task, model, criterion = build(prepared, "--noise-type", "none", *NO_DROPOUT)
    sample = batch(task, range(6))
    assert run(criterion, model, sample)[1]["symm_kl"].item() == 0.0

    # with noise, decoder inputs stay clean unless --r3f-decoder-noise
    for flags, decoder_changes in (([], False), (["--r3f-decoder-noise"], True)):
        # diagnostics off: their extra passes would reach the decoder too
        task, model, criterion = build(
            prepared, "--eps", "1e-2", "--r3f-diagnostics-interval", "0", *NO_DROPOUT, *flags
        )
        inputs = []
        hook = model.decoder.layers[0].register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
        try:
            _, out = run(criterion, model, sample)
        finally:
            hook.remove()
        clean, noised = inputs
        assert out["symm_kl"] > 0
        assert bool((clean != noised).any()) is decoder_changes, flags


@pytest.mark.slow
def test_symm_kl_per_token_does_not_depend_on_sentences_per_batch(prepared, monkeypatch):
    """One batch of 8 vs the same 8 sentences as two batches of 4 (or two workers): the
    per-token symm_kl that fairseq's metrics report must agree.

    Noise is made a fixed function of the token id, so that a sentence gets the same z in
    any batch; dropout is off. The reference's normalisation (sum over padded positions per
    sentence) would differ between the two, as the batches pad to other lengths.
    """
    from fairseq.logging import metrics

    from fairseq_r3f.perturb import EmbeddingNoise

    task, model, criterion = build(prepared, "--eps", "1e-2", *NO_DROPOUT)
    dim = model.encoder.embed_tokens.weight.size(1)

    def token_noise(src_tokens):
        noise = EmbeddingNoise((*src_tokens.shape, dim), 1e-2, "uniform", src_tokens.device)
        freq = torch.arange(1, dim + 1, dtype=torch.float32)
        noise.z = 1e-2 * torch.sin(src_tokens.unsqueeze(-1).float() * freq)
        return noise

    monkeypatch.setattr(criterion, "draw_noise", token_noise)
    whole = run(criterion, model, batch(task, range(8)))[1]
    halves = [run(criterion, model, batch(task, idx))[1] for idx in (range(0, 4), range(4, 8))]

    def reported(logging_outputs):
        with metrics.aggregate(new_root=True) as agg:
            type(criterion).reduce_metrics(logging_outputs)
            # unrounded (the logged symm_kl is rounded to 6 decimals)
            return {key: agg[key].avg for key in ("symm_kl", "loss", "nll_loss")}

    one, two = reported([whole]), reported(halves)
    assert one["symm_kl"] > 1e-9
    assert two["symm_kl"] == pytest.approx(one["symm_kl"], rel=1e-4)
    for key in ("loss", "nll_loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-4)


@pytest.mark.slow
def test_models_without_a_transformer_encoder_are_refused(prepared):
    _, task, model, criterion = build_in_process(
        os.path.join(prepared, "bin"),
        "--arch",
        "lstm",
        "--encoder-embed-dim",
        "16",
        "--decoder-embed-dim",
        "16",
        "--decoder-out-embed-dim",
        "16",
        "--encoder-hidden-size",
        "16",
        "--decoder-hidden-size",
        "16",
        "--criterion",
        "label_smoothed_cross_entropy_r3f",
        base=[f for f in SEQ2SEQ if f != "--share-all-embeddings"],
    )
    task.load_dataset("valid")
    model.train()
    with pytest.raises(ValueError, match="--arch: LSTMModel has no fairseq TransformerEncoderBase"):
        criterion(model, batch(task, range(2)))


@pytest.mark.slow
def test_r4f_head_flag_is_refused_naming_it(prepared):
    """BART trained for summarization has no classification head: --spectral-norm-classification-head
    would change nothing, so it is refused before the first update instead of being ignored."""
    task, model, criterion = build(prepared, "--spectral-norm-classification-head")
    with pytest.raises(ValueError, match="--spectral-norm-classification-head: .*no classification head"):
        criterion(model, batch(task, range(2)))
    task, model, criterion = build(prepared)
    criterion(model, batch(task, range(2)))  # the same run without the flag trains


@pytest.mark.slow
def test_cnn_dm_recipe_trains_resumes_generates_and_scores(prepared, tiny_bpe, tmp_path):
    raw = os.path.join(prepared, "raw")
    assert open(os.path.join(raw, "test.target")).read().count("\n") == 6
    save = str(tmp_path / "ckpt")
    env = {
        "DATA": os.path.join(prepared, "bin"),
        "DATA_DIR": prepared,
        "BART": "",
        "ARCH": "bart_base",
        "PRECISION": "",
        **tiny_bpe,
    }
    tiny = TINY_BART_FLAGS[2:]  # ARCH comes from the environment
    common = [
        *tiny,
        "--cpu",
        "--num-workers",
        "0",
        "--lr",
        "1e-3",
        "--warmup-updates",
        "5",
        "--max-tokens",
        "2048",
        "--log-interval",
        "5",
        "--r3f-lambda",
        "1.0",
        "--eps",
        "1e-3",
    ]
    first = run_script(
        os.path.join(RECIPE, "train.sh"),
        "r3f",
        "1",
        save,
        "--",
        *common,
        "--max-update",
        "30",
        "--total-num-update",
        "40",
        env=env,
    )
    logs = fairseq_logs(first.stdout + first.stderr)
    inner = logs["train_inner"]
    assert {"loss", "nll_loss", "ppl", "symm_kl", "noise_carried", "noise_kl", "embed_rms", "noise_to_embed"} <= set(
        inner[0]
    )  # the first step is diagnosed
    assert float(inner[0]["noise_to_embed"]) == pytest.approx(1e-3 / float(inner[0]["embed_rms"]), rel=1e-3)
    assert float(inner[-1]["loss"]) < float(inner[0]["loss"])
    assert all(float(r["symm_kl"]) > 0 for r in inner)
    assert "symm_kl" not in logs["valid"][-1]  # no noised pass in evaluation

    second = run_script(
        os.path.join(RECIPE, "train.sh"),
        "r3f",
        "1",
        save,
        "--",
        *common,
        "--max-update",
        "40",
        "--total-num-update",
        "40",
        env=env,
    )
    resumed = fairseq_logs(second.stdout + second.stderr)["train_inner"]
    assert f"Loaded checkpoint {save}/checkpoint_last.pt" in second.stdout + second.stderr
    assert int(resumed[0]["num_updates"]) > 30 and int(resumed[-1]["num_updates"]) == 40

    out = str(tmp_path / "eval")
    proc = run_script(os.path.join(RECIPE, "evaluate.sh"), os.path.join(save, "checkpoint_last.pt"), out, env=env)
    hypotheses = open(os.path.join(out, "test.hypo")).read().splitlines()
    assert len(hypotheses) == 6
    scores = json.load(open(os.path.join(out, "rouge.json")))
    assert set(scores) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert all(0 <= v <= 100 for v in scores.values())
    assert f"rouge1={scores['rouge1']:.2f}" in proc.stdout
    # the generated text really is what was scored
    from r3f_experiments.rouge import score_files

    assert score_files(os.path.join(out, "test.hypo"), os.path.join(raw, "test.target")) == pytest.approx(
        {k: v for k, v in scores.items() if k != "rougeLsum"}
    )


@pytest.mark.parametrize(
    "dataset, max_tokens, max_update, warmup",
    [
        ("cnn_dm", "1024", "80000", "1000"),
        ("gigaword", "2048", "200000", "5000"),
        ("reddit_tifu", "2048", "200000", "5000"),
    ],
)
def test_recipes_carry_tables_7_and_8(prepared, dataset, max_tokens, max_update, warmup):
    """DRY_RUN=1 prints the fairseq-train command each recipe would run."""
    import shlex

    script = os.path.join(REPO, "scripts", "summarization", dataset, "train.sh")
    env = {"DATA": os.path.join(prepared, "bin"), "BART": "", "PRECISION": "", "DRY_RUN": "1"}
    for method, criterion in (("r3f", "label_smoothed_cross_entropy_r3f"), ("std", "label_smoothed_cross_entropy")):
        argv = shlex.split(run_script(script, method, env=env).stdout)
        flags = {a[2:]: b for a, b in zip(argv, argv[1:] + [""]) if a.startswith("--")}
        assert flags["criterion"] == criterion
        # configs/summarization/DATASET_METHOD.yaml describes the same run
        cfg = OmegaConf.load(os.path.join(REPO, "configs", "summarization", f"{dataset}_{method}.yaml"))
        assert cfg.criterion._name == criterion and cfg.task._name == flags["task"]
        assert (cfg.dataset.max_tokens, cfg.optimization.max_update, cfg.lr_scheduler.warmup_updates) == (
            int(max_tokens),
            int(max_update),
            int(warmup),
        ) and cfg.lr_scheduler.total_num_update == int(max_update)
        assert (cfg.optimization.lr[0], cfg.optimizer.adam_eps, cfg.optimization.clip_norm) == (3e-5, 1e-8, 0.1)
        assert cfg.optimizer.adam_betas == flags["adam-betas"] and cfg.optimizer.weight_decay == 0.01
        assert (cfg.model.dropout, cfg.criterion.label_smoothing) == (0.1, 0.1)
        assert cfg.model._name == "bart_large" and cfg.optimization.update_freq == [int(flags["update-freq"])]
        if method == "r3f":
            assert (cfg.criterion.r3f_lambda, cfg.criterion.eps) == (float(flags["r3f-lambda"]), 1e-5)
            assert cfg.criterion.noise_type == flags["noise-type"]
        assert (flags["max-tokens"], flags["max-update"], flags["warmup-updates"]) == (max_tokens, max_update, warmup)
        assert (flags["lr"], flags["adam-betas"], flags["adam-eps"], flags["clip-norm"]) == (
            "3e-5",
            "(0.9,0.98)",
            "1e-8",
            "0.1",
        )
        assert (flags["dropout"], flags["weight-decay"], flags["label-smoothing"]) == ("0.1", "0.01", "0.1")
        assert ("r3f-lambda" in flags) == (method == "r3f") and ("eps" in flags) == (method == "r3f")
    proc = subprocess.run(["bash", script, "freelb"], capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode != 0 and "unknown METHOD 'freelb' (std r3f)" in proc.stderr


@pytest.mark.slow
def test_summarization_yaml_runs_under_hydra(prepared, tmp_path):
    proc = run_fairseq(
        "fairseq-hydra-train",
        "--config-dir",
        os.path.join(REPO, "configs", "summarization"),
        "--config-name",
        "cnn_dm_r3f",
        f"task.data={os.path.join(prepared, 'bin')}",
        f"common.user_dir={os.path.join(REPO, 'fairseq_r3f')}",
        f"checkpoint.save_dir={tmp_path / 'ckpt'}",
        "checkpoint.finetune_from_model=null",
        "common.amp=false",
        "common.cpu=true",
        "model._name=bart_base",
        "+model.encoder_layers=2",
        "+model.decoder_layers=2",
        "+model.encoder_embed_dim=64",
        "+model.decoder_embed_dim=64",
        "+model.encoder_ffn_embed_dim=128",
        "+model.decoder_ffn_embed_dim=128",
        "+model.encoder_attention_heads=2",
        "+model.decoder_attention_heads=2",
        "optimization.max_update=3",
        "dataset.num_workers=0",
        "common.log_interval=1",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        cwd=str(tmp_path),
    )
    final = fairseq_logs(proc.stdout + proc.stderr)["train"][-1]
    assert int(final["train_num_updates"]) == 3 and float(final["train_symm_kl"]) > 0


@pytest.mark.slow
def test_two_workers_train_with_the_summarization_criterion(prepared, tmp_path):
    """fairseq's own data-parallel training (2 gloo CPU workers, as tests/e2e/test_distributed.py
    starts them): the summed logging outputs reduce on every update and the run completes."""
    from tests.helpers import json_records, launch_workers

    args = [
        os.path.join(prepared, "bin"),
        "--user-dir",
        os.path.join(REPO, "fairseq_r3f"),
        *SEQ2SEQ,
        *TINY_BART_FLAGS,
        "--criterion",
        "label_smoothed_cross_entropy_r3f",
        "--label-smoothing",
        "0.1",
        "--eps",
        "1e-3",
        "--r3f-diagnostics-interval",
        "2",
        "--max-tokens",
        "1024",
        "--max-update",
        "6",
        "--log-format",
        "json",
        "--log-interval",
        "2",
        "--save-dir",
        str(tmp_path / "ckpt"),
        "--no-epoch-checkpoints",
    ]
    rank0, rank1 = launch_workers("fairseq-train", args, str(tmp_path))
    assert "training on 2 devices" in rank0 and "as rank 1" in rank1 and "done training" in rank0
    inner = json_records(rank0, "train_inner")
    # diagnosed at steps 1, 3, 5: every log interval of 2 updates holds one
    assert inner and all(r["symm_kl"] > 0 and "noise_carried" in r and r["noise_kl"] > 0 and "ppl" in r for r in inner)
    assert json_records(rank0, "valid")[-1]["valid_num_updates"] == 6
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


@pytest.mark.slow
def test_loss_and_accuracy_equal_fairseqs_own_computation(prepared):
    """The criterion takes one log-softmax for the task loss, the KL and the accuracy; in
    evaluation (no noised pass) they must equal fairseq's compute_loss / compute_accuracy."""
    task, model, criterion = build(prepared, "--report-accuracy", *NO_DROPOUT)
    model.eval()
    sample = batch(task, range(6))
    with torch.no_grad():
        _, _, out = criterion(model, sample)
        net_output = model(**sample["net_input"])
        loss, nll_loss = criterion.compute_loss(model, net_output, sample)
        n_correct, total = criterion.compute_accuracy(model, net_output, sample)
    assert out["loss"].item() == pytest.approx(loss.item(), rel=1e-6)
    assert out["nll_loss"].item() == pytest.approx(nll_loss.item(), rel=1e-6)
    assert (int(out["n_correct"]), int(out["total"])) == (int(n_correct), int(total)) and int(total) > 0
