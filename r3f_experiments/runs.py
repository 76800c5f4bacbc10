"""Runs: plan them, skip the finished, resume the rest, and launch them one after another or
through submitit (its local executor, or SLURM). Every driver of a grid of fairseq runs stands on
this module; what a run's log says about it is read by ``fairseq_logs``."""

import argparse
import contextlib
import fcntl
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence

from .fairseq_logs import LOG_NAME, finished_output, fresh_start_problem, is_finished, run_output


class Run(NamedTuple):
    task: str
    method: str
    seed: int
    save_dir: str
    command: str = ""  # this run's own command template, where runs differ by more than their fields

    @property
    def log(self) -> str:
        return os.path.join(self.save_dir, LOG_NAME)


@dataclass(frozen=True)
class LaunchOptions:
    """How a grid's runs are launched: ``jobs`` at a time (above 1, or on SLURM, through
    submitit), and SLURM's resources per run."""

    jobs: int = 1
    cluster: str = "local"
    partition: Optional[str] = None
    gpus_per_node: int = 1
    cpus_per_task: int = 10
    timeout_min: int = 24 * 60
    poll_seconds: float = 10.0

    @property
    def through_submitit(self) -> bool:
        return self.jobs > 1 or self.cluster == "slurm"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "LaunchOptions":
        """The options that ``add_launch_arguments`` declared."""
        options = cls(
            jobs=args.jobs,
            cluster=args.cluster,
            partition=args.partition,
            gpus_per_node=args.gpus_per_node,
            cpus_per_task=args.cpus_per_task,
            timeout_min=args.timeout_min,
            poll_seconds=args.poll_seconds,
        )
        if options.jobs < 1:
            raise argparse.ArgumentTypeError(f"--jobs must be >= 1, got {options.jobs}")
        return options


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """The launch options of every driver, declared here once (read back by ``LaunchOptions.from_args``)."""
    d = LaunchOptions()
    parser.add_argument(
        "--jobs",
        type=int,
        default=d.jobs,
        help="runs at a time: > 1 runs them through submitit's local executor (default 1: "
        "one after another, in this process); with --cluster slurm, the most in the queue",
    )
    parser.add_argument(
        "--cluster",
        choices=["local", "slurm"],
        default=d.cluster,
        help="slurm: submit the runs with submitit's SLURM executor",
    )
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument("--gpus-per-node", type=int, default=d.gpus_per_node, help="SLURM: GPUs per run (default 1)")
    parser.add_argument("--cpus-per-task", type=int, default=d.cpus_per_task, help="SLURM: CPUs per run (default 10)")
    parser.add_argument("--timeout-min", type=int, default=d.timeout_min, help="a run's time limit (default 1 day)")
    parser.add_argument("--poll-seconds", type=float, default=d.poll_seconds, help="how often submitit jobs are polled")


def parse_seeds(items: Sequence[str]) -> List[int]:
    """["1-3", "7"] -> [1, 2, 3, 7] (order kept, duplicates dropped); a descending range
    (e.g. "5-1", which would plan no run) is refused."""
    seeds: List[int] = []
    for item in items:
        for part in str(item).split(","):
            m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
            if not m:
                raise argparse.ArgumentTypeError(f"bad seed {part!r}: use N or FIRST-LAST")
            first, last = int(m.group(1)), int(m.group(2) or m.group(1))
            if last < first:
                raise argparse.ArgumentTypeError(
                    f"--seeds {part.strip()!r}: a descending range plans no run (FIRST-LAST needs FIRST <= LAST; "
                    f"{last}-{first} counts up)"
                )
            seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def plan(out_dir: str, tasks: Sequence[str], methods: Sequence[str], seeds: Sequence[int]) -> List[Run]:
    """All runs, task-major (a task's table fills up first), in OUT_DIR/TASK/METHOD/seedN."""
    return [Run(t, m, s, os.path.join(out_dir, t, m, f"seed{s}")) for t in tasks for m in methods for s in seeds]


def format_command(template: str, run: Run) -> str:
    """The run's own template (or ``template``) with the run's fields substituted, shell-quoted."""
    q = shlex.quote
    return (run.command or template).format(
        task=q(run.task), method=q(run.method), seed=run.seed, save_dir=q(run.save_dir), log=q(run.log)
    )


def scheduler_line(template: str, run: Run) -> str:
    """One shell line that runs ``run`` with its log, for a scheduler of the user's."""
    q = shlex.quote
    return f"mkdir -p {q(run.save_dir)} && {format_command(template, run)} > {q(run.log)} 2>&1"


def keep_old_log(log_path: str) -> Optional[str]:
    """Rename an unfinished run's log to LOG.N (first free N); returns the new name."""
    if not os.path.exists(log_path):
        return None
    n = 1
    while os.path.exists(f"{log_path}.{n}"):
        n += 1
    os.rename(log_path, f"{log_path}.{n}")
    return f"{log_path}.{n}"


class FolderBusy(RuntimeError):
    """Another process holds the folder's lock."""


LOCK_NAME = ".lock"


def take_folder_lock(folder: str, holder: str, what: str = "one sweep per folder at a time"):
    """FOLDER/.lock held (``flock``: released when the returned file is closed, or when this process
    and whatever it execs into end, however they end), or FolderBusy naming the process that holds
    it; ``what`` says why in that message."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_NAME)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder_line = f.read().strip() or "another process"
        f.close()
        raise FolderBusy(f"{folder} is in use by {holder_line}: {what} (wait for it to end, or stop it)") from None
    f.seek(0)
    f.truncate()
    f.write(f"{holder} (pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    f.flush()
    return f


@contextlib.contextmanager
def folder_lock(folder: str, holder: str):
    """Hold FOLDER/.lock while the block runs (``take_folder_lock``), or raise FolderBusy naming
    the process that holds it."""
    f = take_folder_lock(folder, holder)
    try:
        yield
    finally:
        f.close()


def _end_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Stop a child started in its own session and everything it started (SIGTERM, then SIGKILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_logged(argv: Sequence[str], save_dir: str, env: Optional[Dict[str, str]] = None, header: bool = False) -> int:
    """``argv`` with stdout + stderr into SAVE_DIR/train.log (an old log kept as train.log.N);
    ``header``: the command as the log's first line. The command runs in its own process group:
    when this process is interrupted or stopped (Ctrl-C, a cancelled submitit job, a stopped
    sweep), the command and everything it started end with it."""
    os.makedirs(save_dir, exist_ok=True)
    log = os.path.join(save_dir, LOG_NAME)
    keep_old_log(log)
    with open(log, "w") as f:
        if header:
            f.write("# " + shlex.join(argv) + "\n")
            f.flush()
        proc = subprocess.Popen(
            list(argv),
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=None if env is None else {**os.environ, **env},
            start_new_session=True,
        )
        try:
            return proc.wait()
        except BaseException:
            _end_group(proc)
            raise


def run_one(template: str, run: Run) -> str:
    """Run one training and say how it ended: "" when finished as asked, else the problem.
    Module-level, so that submitit can pickle it for its workers."""
    rc = run_logged(["bash", "-c", format_command(template, run)], run.save_dir)
    if rc != 0:
        return f"exit {rc}"
    output = run_output(run.log)
    if not finished_output(output):
        return "no 'done training' line in its log"
    return fresh_start_problem(output)


def print_pending(runs: Sequence[Run], template: str, include_finished: bool = False) -> None:
    """One scheduler line per run still to do (every run with ``include_finished``)."""
    for run in runs:
        if include_finished or not is_finished(run.log):
            print(scheduler_line(template, run))


def make_executor(options: LaunchOptions, folder: str):
    """submitit's executor: the local one (N processes on this machine) or SLURM's."""
    import submitit  # only when launching through submitit

    if options.cluster == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(
            timeout_min=options.timeout_min,
            gpus_per_node=options.gpus_per_node,
            cpus_per_task=options.cpus_per_task,
            name="r3f_sweep",
            **({"slurm_partition": options.partition} if options.partition else {}),
        )
    else:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=options.timeout_min)
    return executor


def _progress(tag, done, running, failed, pending, durations, jobs) -> str:
    line = f"[{tag}] {done} done, {running} running, {failed} failed, {pending} pending"
    if durations and (running or pending):
        eta = statistics.median(durations) * (pending + running) / max(jobs, 1)
        line += f"; ETA {eta / 60:.0f} min"
    return line


def _name(run: Run) -> str:
    return f"{run.task} {run.method} seed {run.seed}"


def launch_submitit(
    runs: Sequence[Run], template: str, options: LaunchOptions, folder: str, tag: str = "sweep"
) -> List[Run]:
    """At most ``options.jobs`` runs at a time through submitit (job files in ``folder``);
    returns the failed runs, with a progress line at every change."""
    executor = make_executor(options, os.path.join(folder, "%j"))
    pending, running, failed, durations = list(runs), {}, [], []
    try:
        _launch_loop(executor, pending, running, failed, durations, template, options, tag)
    except BaseException:
        _cancel(running, tag)
        raise
    return failed


def _cancel(running: dict, tag: str, wait_s: float = 30.0) -> None:
    """Cancel the sweep's running submitit jobs (each ends its run's process group) and wait
    for them to end, so that no run trains on without its sweep."""
    if not running:
        return
    print(f"[{tag}] stopping: cancelling {len(running)} running run(s)", flush=True)
    for job in running:
        with contextlib.suppress(Exception):
            job.cancel()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not all(job.done() for job in running):
        time.sleep(0.5)
    alive = [f"{_name(run)} (job {job.job_id})" for job, (run, _) in running.items() if not job.done()]
    if alive:
        print(f"[{tag}] warning: still running {wait_s:.0f} s after cancelling: {', '.join(alive)}", flush=True)


def _launch_loop(executor, pending, running, failed, durations, template, options, tag) -> None:
    done = 0
    while pending or running:
        while pending and len(running) < options.jobs:
            run = pending.pop(0)
            print(f"[{tag}] submit {_name(run)} -> {run.log}", flush=True)
            running[executor.submit(run_one, template, run)] = (run, time.monotonic())
        finished = [job for job in running if job.done()]
        for job in finished:
            run, start = running.pop(job)
            try:
                problem = job.result()
            except Exception as e:  # noqa: BLE001  (a job killed or crashed: reported, the sweep goes on)
                problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            durations.append(time.monotonic() - start)
            if problem:
                failed.append(run)
                print(f"[{tag}] {_name(run)}: FAILED ({problem}); see {run.log}", flush=True)
            else:
                done += 1
                print(f"[{tag}] {_name(run)}: done in {durations[-1]:.0f} s", flush=True)
        if finished:
            print(_progress(tag, done, len(running), len(failed), len(pending), durations, options.jobs), flush=True)
        elif running:
            time.sleep(options.poll_seconds)


def launch_here(runs: Sequence[Run], template: str, tag: str = "sweep") -> List[Run]:
    """The runs one after another in this process; returns the failed runs."""
    failed = []
    for i, run in enumerate(runs, 1):
        name = f"[{tag}] {i}/{len(runs)} {_name(run)}"
        print(f"{name}: running -> {run.log}", flush=True)
        start = time.monotonic()
        problem = run_one(template, run)
        if problem:
            failed.append(run)
            print(f"{name}: FAILED ({problem}) after {time.monotonic() - start:.0f} s; see {run.log}", flush=True)
        else:
            print(f"{name}: done in {time.monotonic() - start:.0f} s", flush=True)
    return failed


def _stop_on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# SIGINT too: a shell starts a background command (`nohup ... &`) with SIGINT ignored, and a
# process it starts inherits that; submitit cancels a local job with SIGINT, so its runs would
# outlive the sweep. A handled signal is reset to its default in every process started.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_all(runs: Sequence[Run], template: str, options: LaunchOptions, folder: str, tag: str = "sweep") -> int:
    """Every run not yet finished (a finished one is skipped, an unfinished one started again:
    its recipe resumes from its checkpoint); exit status 1 if any failed. ``folder`` (the
    sweep's own, for submitit's files) is locked while the sweep runs: a second sweep into it
    is refused. Stopped (Ctrl-C, SIGTERM), the sweep ends its running runs first."""
    previous = {sig: signal.signal(sig, _stop_on_signal) for sig in STOP_SIGNALS}
    try:
        with folder_lock(folder, f"python -m r3f_experiments.{tag}"):
            return _run_all(runs, template, options, folder, tag)
    except FolderBusy as e:
        print(f"[{tag}] error: {e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(f"[{tag}] stopped; rerun the same command to go on (finished runs are skipped)", flush=True)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_all(runs: Sequence[Run], template: str, options: LaunchOptions, folder: str, tag: str) -> int:
    todo = []
    for run in runs:
        if is_finished(run.log):
            print(f"[{tag}] {_name(run)}: skipped (finished: {run.log})", flush=True)
        else:
            todo.append(run)
    skipped = len(runs) - len(todo)
    how = f"submitit, {options.cluster}, " if options.through_submitit else ""
    print(
        f"[{tag}] {len(runs)} runs: {skipped} finished, {len(todo)} to run ({how}{options.jobs} at a time)", flush=True
    )
    if options.through_submitit:
        failed = launch_submitit(todo, template, options, folder, tag)
    else:
        failed = launch_here(todo, template, tag)
    print(f"[{tag}] {len(todo)} ran, {skipped} skipped (finished), {len(failed)} failed", flush=True)
    return 1 if failed else 0
