"""How much of the R3F noise reaches the encoder under each precision: the criterion's
``noise_carried`` metric (1.0 = intact, 0 = rounded away) on real batches.

    python -m r3f_experiments.bench.noise_carried [--arch tiny|roberta_base|roberta_large] [--eps 1e-5]

Builds the model with fairseq from fairseq-train flags, runs training-mode steps of
``sentence_prediction_r3f`` (forward only) on the built-in synthetic task, and prints one
row per precision:

    fp32      the model in fp32
    fp16      the model cast to half, as fairseq's --fp16 does
    autocast  fp32 model under torch.autocast(float16), as fairseq's --amp does (on a CPU,
              CPU autocast stands in for CUDA's)

A random-init model's token embeddings have std 0.02; ``--embedding-std`` rescales them
to a pre-trained model's scale (fp16's spacing between values grows with magnitude, so
larger embeddings lose more of sigma). Pad positions are not counted.
"""

import argparse
import contextlib
import tempfile

import torch

from ..data.synthetic import make_task
from ..fairseq_setup import r3f_classifier_on


def build(data_dir, arch, eps, device):
    built = r3f_classifier_on(data_dir, arch, eps)
    return built.task, built.model.to(device), built.criterion


def measure(task, model, criterion, device, precision, batches=4, batch_size=16):
    dtype = torch.float16 if precision == "fp16" else torch.float32
    model = model.to(dtype).train()
    autocast = torch.autocast(device.type, dtype=torch.float16) if precision == "autocast" else contextlib.nullcontext()
    dataset = task.dataset("valid")
    carried, sentences = 0.0, 0
    with autocast, torch.no_grad():
        for b in range(batches):
            sample = dataset.collater([dataset[i] for i in range(b * batch_size, (b + 1) * batch_size)])
            sample = {
                k: (
                    {kk: vv.to(device) for kk, vv in v.items()}
                    if isinstance(v, dict)
                    else v.to(device)
                    if torch.is_tensor(v)
                    else v
                )
                for k, v in sample.items()
            }
            _, size, log = criterion(model, sample)
            carried += log["noise_carried"].item()
            sentences += size
    return carried / sentences


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="tiny", choices=["tiny", "roberta_base", "roberta_large"])
    parser.add_argument("--eps", type=float, default=1e-5)
    parser.add_argument(
        "--embedding-std", type=float, nargs="+", default=[0.02, 0.05, 0.1], help="token-embedding scales to measure at"
    )
    opts = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(1)

    with tempfile.TemporaryDirectory() as tmp:
        data = make_task(tmp, n_train=64, n_valid=64, seed=1)
        task, model, criterion = build(data, opts.arch, opts.eps, device)
        task.load_dataset("valid")
        table = model.encoder.sentence_encoder.embed_tokens.weight
        precisions = ("fp32", "fp16", "autocast")
        rows = []
        for std in opts.embedding_std:
            with torch.no_grad():
                table.mul_(std / table.float().std())
            rows.append((std, [measure(task, model, criterion, device, p) for p in precisions]))
            model.float()
    print(f"\ndevice: {device} | arch: {opts.arch} (random init, token embeddings rescaled) | eps {opts.eps}\n")
    print("| token-embedding std | " + " | ".join(precisions) + " |")
    print("|---|" + "---|" * len(precisions))
    for std, values in rows:
        print(f"| {std:g} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


if __name__ == "__main__":
    main()
