"""r3f_experiments.subsample_bin: a task's data-bin with a fixed subset of its training set."""

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def pair_bin(tmp_path_factory):
    from r3f_experiments.data.synthetic import make_tasks

    root = tmp_path_factory.mktemp("subsample")
    made = make_tasks(str(root / "data"), ["sentiment"], n_train=120, n_valid=30, seed=3)
    glue = root / "glue"
    glue.mkdir()
    os.symlink(made["sentiment"], glue / "SST-2-bin")
    return str(glue)


def load(bin_dir, part, split):
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(os.path.join(bin_dir, part, "dict.txt"))
    dataset = data_utils.load_indexed_dataset(os.path.join(bin_dir, part, split), dictionary)
    return [dataset[i].tolist() for i in range(len(dataset))]


def test_the_subset_keeps_aligned_rows_and_every_other_split_whole(pair_bin, tmp_path):
    from r3f_experiments import subsample_bin
    from r3f_experiments.recipes.glue import train_size

    out = str(tmp_path / "sub")
    target = subsample_bin.subsample(pair_bin, "SST-2", 50, out, seed=1)
    source = os.path.join(pair_bin, "SST-2-bin")
    assert train_size(target) == 50
    with open(os.path.join(target, "subsample.json")) as f:
        record = json.load(f)
    kept = record["rows"]
    assert record["kept"] == 50 and record["train"] == 120 and kept == sorted(set(kept)) and len(kept) == 50
    assert kept == subsample_bin.rows(120, 50, 1) and kept != subsample_bin.rows(120, 50, 2)
    for part in ("input0", "label"):
        whole = load(source, part, "train")
        assert load(target, part, "train") == [whole[i] for i in kept]  # sentence and label stay together
        assert load(target, part, "valid") == load(source, part, "valid")
        assert (
            open(os.path.join(target, part, "dict.txt")).read() == open(os.path.join(source, part, "dict.txt")).read()
        )


def test_bad_requests_are_refused_and_nothing_is_overwritten(pair_bin, tmp_path):
    tool = [sys.executable, "-m", "r3f_experiments.subsample_bin", pair_bin, "SST-2"]
    out = str(tmp_path / "sub")

    def run(*args):
        return subprocess.run([*tool, *args], capture_output=True, text=True)

    too_many = run("120", out)
    assert too_many.returncode == 2 and "between 1 and the training set's 119, got 120" in too_many.stderr
    assert not os.path.exists(out + "/SST-2-bin")
    assert run("40", out).returncode == 0
    before = open(os.path.join(out, "SST-2-bin", "subsample.json")).read()
    again = run("60", out)
    assert again.returncode == 2 and "is never overwritten" in again.stderr
    assert open(os.path.join(out, "SST-2-bin", "subsample.json")).read() == before
    missing = subprocess.run(
        [sys.executable, "-m", "r3f_experiments.subsample_bin", pair_bin, "QNLI", "5", out],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "QNLI-bin: not a data-bin" in missing.stderr
