"""Print the demo's results table from its fairseq-train logs.

    python -m r3f_experiments.demo_table OUT_DIR METHOD [METHOD ...]   (reads OUT_DIR/METHOD.log)
"""

import os
import sys

from .fairseq_logs import parse_json_logs, training_seconds


def summarise(log_path: str) -> dict:
    with open(log_path) as f:
        output = f.read()
    logs = parse_json_logs(output)
    if not logs["valid"] or not logs["train"]:
        raise ValueError(f"{log_path}: no train/valid records; did fairseq-train finish?")
    accuracies = [float(v["valid_accuracy"]) for v in logs["valid"]]
    return {
        "best": max(accuracies),
        "last": accuracies[-1],
        "seconds": training_seconds(output),
        "symm_kl": logs["train"][-1].get("train_symm_kl", "-"),
        # measured at diagnosed steps only: the last epoch that holds one
        "noise_carried": next((r["train_noise_carried"] for r in reversed(logs["train"])
                               if "train_noise_carried" in r), "-"),
        "updates": logs["train"][-1]["train_num_updates"],
    }


def main(argv) -> None:
    out_dir, methods = argv[0], argv[1:]
    rows = {m: summarise(os.path.join(out_dir, f"{m}.log")) for m in methods}
    print()
    print("| method | dev accuracy (best) | dev accuracy (last) | train time (s) | symm_kl (last epoch) "
          "| noise_carried | updates |")
    print("|---|---|---|---|---|---|---|")
    for method, r in rows.items():
        print(f"| {method} | {r['best']:.1f} | {r['last']:.1f} | {r['seconds']:.1f} | {r['symm_kl']} "
              f"| {r['noise_carried']} | {r['updates']} |")


if __name__ == "__main__":
    main(sys.argv[1:])
