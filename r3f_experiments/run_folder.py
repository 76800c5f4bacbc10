"""The folder a recipe trains in (its SAVE_DIR): one run per folder, and one process at a time.

    python -m r3f_experiments.run_folder SAVE_DIR --run "glue RTE r3f" --seed 1 [--resume-anyway] -- COMMAND...

What the shell recipes (``run_recipe`` in scripts/recipe_common.sh) start ``fairseq-train`` through:

- it holds SAVE_DIR/.lock (``flock``) and passes it on to COMMAND, which it becomes (``exec``, same
  pid), so the lock lasts as long as the training; a second recipe into the same folder meanwhile is
  refused, naming the holder's pid;
- SAVE_DIR/recipe_run.txt records the run (recipe, names, seed) and its fairseq-train settings when
  it first starts. fairseq resumes from SAVE_DIR/checkpoint_last.pt whatever that was trained with, so
  a rerun whose record differs is refused before COMMAND starts, naming both runs: another run
  (task, method, seed) always; other settings unless ``--resume-anyway`` (``RESUME_ANYWAY=1``). The
  flags that only say when to stop (``STOP_FLAGS``) may differ: a run may be resumed to train longer.
  A SAVE_DIR that holds checkpoints but no record (written before records were kept) is refused
  likewise, and ``--resume-anyway`` adopts it.

Standard library only: it runs before every training.
"""

import argparse
import os
import shlex
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from .runs import FolderBusy, keep_old_log, take_folder_lock

RECORD_NAME = "recipe_run.txt"
# fairseq-train flags that end a run without changing its course up to the end
STOP_FLAGS = frozenset({"--max-update", "--max-epoch", "--stop-time-hours", "--patience", "--stop-min-lr"})
# words that name the installation, not the run: the plugin's folder (the executable is left out too)
INSTALLATION_FLAGS = frozenset({"--user-dir"})
ANYWAY = "RESUME_ANYWAY=1"


class Record(dict):
    """``run``, ``seed`` and ``command`` (a shell-quoted line) of a recipe_run.txt."""

    @property
    def name(self) -> str:
        return f"{self.get('run', '?')} seed {self.get('seed', '?')}"


def settings_words(command: Sequence[str]) -> List[str]:
    """COMMAND without the executable and the installation's flags, a word that names an existing
    file or folder made absolute (the same run, started from another folder)."""
    words, skip = [], False
    for word in list(command)[1:]:
        if skip:
            skip = False
            continue
        flag = word.split("=", 1)[0]
        if flag in INSTALLATION_FLAGS:
            skip = "=" not in word
            continue
        if not word.startswith("-") and os.path.exists(word):
            word = os.path.abspath(word)
        words.append(word)
    return words


def settings(words: Sequence[str]) -> Dict[str, Tuple[str, ...]]:
    """{flag: its values} as fairseq reads them (a repeated flag: its last values); the words
    before the first flag under ""."""
    found: Dict[str, Tuple[str, ...]] = {}
    flag, values = "", []
    for word in list(words) + ["--"]:
        if word.startswith("--"):
            found[flag] = tuple(values)
            flag, values = word.split("=", 1)[0], ([word.split("=", 1)[1]] if "=" in word else [])
        else:
            values.append(word)
    found.pop("--", None)
    return found


def differences(recorded: Sequence[str], asked: Sequence[str]) -> List[str]:
    """The settings that differ, as "FLAG: A in the record, B now", stop flags left out."""
    old, new = settings(recorded), settings(asked)

    def shown(values: Optional[Tuple[str, ...]]) -> str:
        return "absent" if values is None else (shlex.join(values) or "set")

    return [
        f"{flag or 'DATA'}: {shown(old.get(flag))} in the record, {shown(new.get(flag))} now"
        for flag in dict.fromkeys([*old, *new])
        if flag not in STOP_FLAGS and old.get(flag) != new.get(flag)
    ]


def read_record(path: str) -> Record:
    record = Record()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                key, _, value = line.rstrip("\n").partition(" ")
                record[key] = value
    return record


def write_record(path: str, run: str, seed: str, words: Sequence[str]) -> None:
    with open(path + ".part", "w", encoding="utf-8") as f:
        f.write(
            "# the run this folder holds, written by its recipe when it started: a rerun with another run\n"
            "# or other settings is refused (python -m r3f_experiments.run_folder --help)\n"
            f"run {run}\nseed {seed}\ncommand {shlex.join(words)}\n"
        )
    os.replace(path + ".part", path)


def checkpoints(save_dir: str) -> List[str]:
    return sorted(f for f in os.listdir(save_dir) if f.startswith("checkpoint") and f.endswith(".pt"))


def refusal(save_dir: str, run: str, seed: str, words: Sequence[str], anyway: bool) -> Optional[str]:
    """Why this run may not start in SAVE_DIR, or None (then SAVE_DIR's record is this run's)."""
    path = os.path.join(save_dir, RECORD_NAME)
    this = f"{run} seed {seed}"
    if not os.path.exists(path):
        found = checkpoints(save_dir)
        if found and not anyway:
            return (
                f"SAVE_DIR={save_dir} holds {', '.join(found)} but no {RECORD_NAME} saying which run wrote them, "
                f"and fairseq would go on from them, or overwrite them, as {this}. If they are this run's, "
                f"rerun with {ANYWAY} (the record is written then); otherwise give this run its own SAVE_DIR"
            )
        write_record(path, run, seed, words)
        return None
    record = read_record(path)
    if (record.get("run"), record.get("seed")) != (run, seed):
        return (
            f"SAVE_DIR={save_dir} holds the run {record.name} ({path}), not {this}: fairseq would go on "
            "from that run's checkpoint, or overwrite it. Give this run its own SAVE_DIR"
        )
    changed = differences(shlex.split(record.get("command", "")), words)
    if changed and not anyway:
        return (
            f"SAVE_DIR={save_dir} holds {this} trained with other settings ({path}): "
            + "; ".join(changed[:8])
            + (f"; ... {len(changed) - 8} more" if len(changed) > 8 else "")
            + ". fairseq would go on from its checkpoint, or overwrite it, with the new settings: give this run "
            + "its own SAVE_DIR, "
            f"or rerun with {ANYWAY} to go on anyway"
        )
    if changed:
        keep_old_log(path)  # the earlier settings stay beside it, as recipe_run.txt.N
    write_record(path, run, seed, words)
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.run_folder",
        usage="%(prog)s [-h] SAVE_DIR --run RUN --seed SEED [--resume-anyway] -- COMMAND...",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("save_dir", metavar="SAVE_DIR")
    parser.add_argument("--run", required=True, help='the recipe and its names, e.g. "glue RTE r3f"')
    parser.add_argument("--seed", required=True)
    parser.add_argument("--resume-anyway", action="store_true", help="go on with other settings, or adopt checkpoints")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        parser.error("no COMMAND after --")
    this = f"{args.run} seed {args.seed}"
    try:
        lock = take_folder_lock(args.save_dir, this, "one run per folder at a time")
    except FolderBusy as e:
        print(f"error: SAVE_DIR={e}", file=sys.stderr)
        return 2
    problem = refusal(args.save_dir, args.run, args.seed, settings_words(command), args.resume_anyway)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    os.set_inheritable(lock.fileno(), True)  # COMMAND holds the lock from here until it ends
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"error: cannot run {command[0]}: {e}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
