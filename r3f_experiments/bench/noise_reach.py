"""Does the R3F noise reach the encoder? This plugin's noised pass against the reference's, on a
pre-trained checkpoint and real batches.

    python -m r3f_experiments.bench.noise_reach CHECKPOINT DATA_BIN [--eps 1e-5 1] \\
        [--noise-scale absolute|relative ...] [--batches 4] [--batch-size 16] [--json-out FILE]

The model is the checkpoint's encoder with a seeded classification head, in eval mode (dropout
off), so that two passes differ by the noise alone. For each sigma the noise is drawn once per
batch and given to two noised passes, and the symmetric KL between the clean pass and each is
summed over sentences and divided by their number (``noise_kl``, as the R3F criterions log it):

    ours       the noise on the encoder's token embeddings, as ``sentence_prediction_r3f`` applies
               it (``perturbed_token_embeddings``: a hook inside the encoder);
    reference  the call of the authors' criterion (``examples/rxf``):
               ``model(src_tokens, ..., token_embeddings=embeddings + noise)``.
               ``RobertaModel.forward`` passes the keyword on and ``RobertaEncoder.forward``
               drops it, so the encoder recomputes clean embeddings: the KL is exactly 0 for
               RoBERTa, XLM-R and converted BERTs.

``--noise-scale relative`` makes sigma a fraction of the token-embedding RMS (``--noise-scale``
of the criterions), one scale per ``--eps`` value given in the same order (or one for all).
"""

import argparse
import json
import sys
from typing import Dict, List

import torch

HEAD = "noise_reach"


def load_encoder(checkpoint: str, data_bin: str, num_classes: int):
    """(task, model) of the checkpoint's encoder plus a seeded classification head."""
    from fairseq_r3f.checkpoint_safety import allow_fairseq_checkpoints

    from ..checkpoint_model_flags import checkpoint_model_flags, converted_from_bert
    from ..fairseq_setup import build_from_flags
    from ..paths import plugin_dir

    separator = [] if converted_from_bert(checkpoint) else ["--separator-token", "2"]
    argv = [
        data_bin,
        "--user-dir",
        plugin_dir(),
        "--task",
        "sentence_prediction",
        "--num-classes",
        str(num_classes),
        "--init-token",
        "0",
        *separator,
        "--criterion",
        "sentence_prediction",
        *checkpoint_model_flags(checkpoint),
        "--cpu",
    ]
    _, task, model, _ = build_from_flags(argv, criterion=False)
    allow_fairseq_checkpoints()
    state = torch.load(checkpoint, map_location="cpu")["model"]
    missing, _ = model.load_state_dict(state, strict=False)
    not_loaded = [k for k in missing if not k.startswith("classification_heads.")]
    if not_loaded:
        raise ValueError(f"{checkpoint}: the encoder's weights are not all there (missing {not_loaded[:3]} ...)")
    torch.manual_seed(0)
    model.register_classification_head(HEAD, num_classes=num_classes)
    return task, model.eval()


def noise_kls(task, model, eps: float, relative: bool, batches: int, batch_size: int) -> Dict[str, float]:
    """{"ours": ..., "reference": ..., "embed_rms": ...}: per-sentence mean over the batches."""
    from fairseq_r3f.criterions.classification import token_encoder_of
    from fairseq_r3f.method.divergence import symmetric_kl
    from fairseq_r3f.method.noise import token_rms
    from fairseq_r3f.perturb import EmbeddingNoise, perturbed_token_embeddings

    encoder = token_encoder_of(model)
    dataset = task.dataset("valid")
    sums = {"ours": 0.0, "reference": 0.0, "embed_rms": 0.0}
    sentences = 0
    torch.manual_seed(1)
    with torch.no_grad():
        for b in range(batches):
            ids = range(b * batch_size, min((b + 1) * batch_size, len(dataset)))
            if not ids:
                break
            src = dataset.collater([dataset[i] for i in ids])["net_input"]["src_tokens"]
            keep = src.ne(encoder.padding_idx)
            embeddings = encoder.embed_tokens(src)
            noise = EmbeddingNoise(
                (*src.shape, embeddings.size(-1)), eps, "uniform", src.device, relative=relative, keep=keep
            )
            noised_embeddings = noise(embeddings)
            clean = model(src, features_only=True, classification_head_name=HEAD)[0]
            with perturbed_token_embeddings(encoder, noise):
                ours = model(src, features_only=True, classification_head_name=HEAD)[0]
            # the reference's noised pass, as its criterion calls the model
            reference = model(
                src, features_only=True, classification_head_name=HEAD, token_embeddings=noised_embeddings
            )[0]
            sums["ours"] += symmetric_kl(clean, ours).sum().item()
            sums["reference"] += symmetric_kl(clean, reference).sum().item()
            sums["embed_rms"] += token_rms(embeddings, keep).item() * src.size(0)
            sentences += src.size(0)
    return {k: v / sentences for k, v in sums.items()}


def main(argv=None) -> List[dict]:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.bench.noise_reach", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("checkpoint", help="a fairseq RoBERTa / XLM-R / converted BERT model.pt")
    parser.add_argument("data_bin", help="a sentence_prediction data-bin (input0/, label/) with a valid split")
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-5])
    parser.add_argument("--noise-scale", nargs="+", choices=["absolute", "relative"], default=["absolute"])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    scales = args.noise_scale * len(args.eps) if len(args.noise_scale) == 1 else args.noise_scale
    if len(scales) != len(args.eps):
        parser.error(f"--noise-scale: one value, or one per --eps value ({len(args.eps)}), got {len(scales)}")
    if any(e <= 0 for e in args.eps) or args.batches < 1 or args.batch_size < 1:
        parser.error("--eps, --batches and --batch-size must be positive")

    from ..recipes.glue import RecipeError, label_count

    try:
        task, model = load_encoder(args.checkpoint, args.data_bin, label_count(args.data_bin))
        task.load_dataset("valid")
    except (OSError, ValueError, RecipeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    rows = []
    for eps, scale in zip(args.eps, scales):
        kls = noise_kls(task, model, eps, scale == "relative", args.batches, args.batch_size)
        rows.append({"eps": eps, "noise_scale": scale, **kls})
    print("| sigma | noise_kl, this plugin | noise_kl, reference (examples/rxf) | token-embedding RMS |")
    print("|---|---|---|---|")
    for r in rows:
        sigma = f"{r['eps']:g}" + (" x RMS" if r["noise_scale"] == "relative" else "")
        print(f"| {sigma} | {r['ours']:.3g} | {r['reference']:.3g} | {r['embed_rms']:.3f} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
