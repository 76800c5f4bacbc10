"""Fixtures only (helpers are in ``tests/helpers.py``): a synthetic task binarised by
fairseq-preprocess and a local GPT-2 BPE; every test is marked with its folder (unit, plugin,
e2e, experiments) so that ``-m`` selects by target."""

import json
import os

import pytest

TEST_KINDS = ("unit", "plugin", "e2e", "experiments")


def pytest_collection_modifyitems(config, items):
    for item in items:
        kind = os.path.basename(os.path.dirname(str(item.fspath)))
        if kind in TEST_KINDS:
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> str:
    """data-bin dir of the built-in synthetic task (small), made with fairseq-preprocess."""
    from r3f_experiments.data.synthetic import make_task

    return make_task(str(tmp_path_factory.mktemp("synthetic")), n_train=400, n_valid=96, seed=3)


MERGES = [("t", "h"), ("th", "e"), ("\u0120", "the")]  # 'the', and ' the' (Ġthe)


@pytest.fixture(scope="session")
def tiny_bpe(tmp_path_factory):
    """A local GPT-2 BPE: the 256 byte symbols (id = byte value), 3 merges, and a dict.txt."""
    from fairseq.data.encoders.gpt2_bpe_utils import bytes_to_unicode

    folder = tmp_path_factory.mktemp("gpt2_bpe")
    byte_symbols = bytes_to_unicode()
    encoder = {byte_symbols[b]: b for b in range(256)}
    for a, b in MERGES:
        encoder[a + b] = len(encoder)
    with open(folder / "encoder.json", "w", encoding="utf-8") as f:
        json.dump(encoder, f, ensure_ascii=False)
    with open(folder / "vocab.bpe", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES))
    with open(folder / "dict.txt", "w", encoding="utf-8") as f:
        f.writelines(f"{i} {1000 - i}\n" for i in range(len(encoder)))
    # keys: the environment variables the GLUE and summarization prepare scripts read
    return {
        "BPE_ENCODER": str(folder / "encoder.json"),
        "BPE_VOCAB": str(folder / "vocab.bpe"),
        "ROBERTA_DICT": str(folder / "dict.txt"),
        "BART_DICT": str(folder / "dict.txt"),
    }
