"""``retro train --members N``: N imitators trained side by side, one process each, saved as one ensemble.

Each member is an ordinary run of ``retro train`` in ``OUT/members/K`` with seed ``SEED + K`` (its own
initialization, minibatch order and held-out split) and the machine's threads shared out between the members; when
all have finished, :func:`retro.inference.ensemble.combine_trained` writes their ensemble (the average of their
next-token distributions) into ``OUT``, where ``retro score`` and ``retro evaluate`` read it like any checkpoint.
``--resume OUT`` resumes every member and combines them again. Member 0 shows its progress on the terminal; the
others write theirs to ``OUT/members/K.log``. A member that fails stops the others (their last checkpoints stay
intact) and is reported in one line.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import signal
import sys
from pathlib import Path

from retro.checkpoint import CONFIG_FILE, CheckpointError, read_config
from retro.data import data_file
from retro.errors import RetroError
from retro.inference.run_directory import (
    MEMBERS_DIR,
    STATE_DIR,
    check_run_directory,
    clear_previous_run,
)
from retro.models.ensemble import MAX_MEMBERS
from retro.outlock import locked_output_directory
from retro.safepaths import check_output_directory, open_for_appending, refuse_symlink

__all__ = ["MEMBERS_DIR", "MAX_MEMBERS", "member_directories", "is_ensemble_run", "run_members"]

POLL_SECONDS = 0.5
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): the signal a process gets when its parent dies


def member_directories(out: str | os.PathLike, members: int) -> list[Path]:
    """The run directories of the ``members`` members of the ensemble run in ``out``."""
    return [Path(out) / MEMBERS_DIR / str(k) for k in range(members)]


def is_ensemble_run(out: str | os.PathLike) -> bool:
    """Whether ``out`` holds a run of ``retro train --members``: a ``members`` directory of member runs, no
    training state of its own, and no checkpoint other than an ensemble's (``info.ensemble_members``)."""
    out = Path(out)
    if not os.path.lexists(out / MEMBERS_DIR / "0") or os.path.lexists(out / STATE_DIR):
        return False
    if not os.path.lexists(out / CONFIG_FILE):
        return True  # stopped before its members were combined
    try:
        info = read_config(out).get("info")
    except CheckpointError:
        return False
    return isinstance(info, dict) and "ensemble_members" in info


def _saved_members(out: Path) -> int:
    """How many members the ensemble run in ``out`` has (``members/0``, ``members/1``, ... without gaps)."""
    count = 0
    while count < MAX_MEMBERS and (out / MEMBERS_DIR / str(count)).is_dir():
        count += 1
    return count


def _refuse_links(out: Path, members: int) -> None:
    """No member directory or log may lead outside ``out``: refuse symbolic links among them."""
    refuse_symlink(out / MEMBERS_DIR, "in the run directory,")
    for k in range(members):
        refuse_symlink(out / MEMBERS_DIR / str(k), "in the run directory,")
        refuse_symlink(out / MEMBERS_DIR / f"{k}.log", "in the run directory,")


def _die_with_parent(parent: int) -> None:
    """On Linux, have the kernel send this process SIGTERM when its parent dies (a killed ``retro train`` leaves
    no member running); elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0 and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)  # the parent died before the request was made


def _member(args, index: int, threads: int, log: str | None, errors, parent: int) -> None:
    """One member's run in a child process: its own threads, and its stderr in ``log`` unless it is member 0."""
    _die_with_parent(parent)
    import torch

    from retro.cli.plugins import load_user_imitators
    from retro.cli.train import run

    torch.set_num_threads(threads)
    if log is not None:
        handle = open_for_appending(log, create=True)  # it lives as long as the process
        os.dup2(handle.fileno(), 2)
        sys.stderr = handle
    try:
        load_user_imitators(
            args
        )  # the parent's imports (--import, --plugins) are not inherited by a new process
        run(args)
    except RetroError as e:
        errors.put((index, str(e)))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _member_args(args, index: int, out: Path, resume: bool):
    member = copy.copy(args)
    member.members = 1
    directory = str(member_directories(out, index + 1)[index])
    if resume:
        member.resume, member.out = directory, None
    else:
        member.out, member.seed = directory, args.seed + index
    return member


def _wait(processes, errors) -> None:
    """Wait for every member; the first failure stops the others and is raised as one line."""
    running = dict(enumerate(processes))
    while running:
        for index, process in list(running.items()):
            process.join(POLL_SECONDS / len(running))
            if process.exitcode is None:
                continue
            del running[index]
            if process.exitcode != 0:
                for other in running.values():
                    other.terminate()
                for other in running.values():
                    other.join()
                reasons = {}
                while not errors.empty():
                    k, message = errors.get()
                    reasons.setdefault(k, message)
                reason = reasons.get(index, f"exit status {process.exitcode}")
                raise RetroError(f"member {index} failed: {reason} (the other members were stopped)")


def run_members(args, members: int | None) -> int:
    """Train ``members`` members side by side (``None``: resume those of ``--resume``), then write their ensemble
    into the run's directory."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RetroError("--members starts its own processes: run it without torchrun")
    resume = bool(args.resume)
    replacing = False
    if resume:
        out = Path(args.resume)
        members = _saved_members(out)
        if args.members is not None and args.members != members:
            raise RetroError(
                f"--members {args.members}: the run in {str(out)!r} has {members} members; resume it without "
                "--members"
            )
    else:
        if args.out is None:
            raise RetroError("give --out (or --resume DIR)")
        inputs = [data_file(spec) for spec in (args.data, args.heldout) if spec]
        out = check_output_directory(Path(args.out), inputs, "--out")
        if out.is_dir() and any(out.iterdir()) and not args.overwrite:
            raise RetroError(
                f"--out {str(out)!r} is not empty; pass --overwrite to replace a previous run, or choose another"
            )
        replacing = check_run_directory(out, args.overwrite)  # before any member starts
    _refuse_links(out, members)
    threads = max(1, torch.get_num_threads() // members)
    print(
        f"retro train: {members} members side by side, {threads} thread(s) each, in "
        f"{out / MEMBERS_DIR}/0..{members - 1} (member 0's progress below; the others' in "
        f"{out / MEMBERS_DIR}/K.log)",
        file=sys.stderr,
    )
    with locked_output_directory(out):  # a second run into OUT fails at once; members lock their own
        if replacing:  # the replaced run's state, history and members must not be resumed into the new run
            clear_previous_run(out, checkpoint=True)
        (out / MEMBERS_DIR).mkdir(exist_ok=True)
        _train_and_combine(args, members, out, resume, threads)
    print(f"retro train: the ensemble of {members} members is in {out}", file=sys.stderr)
    return 0


def _train_and_combine(args, members: int, out: Path, resume: bool, threads: int) -> None:
    from retro.inference.ensemble import combine_trained

    directories = member_directories(out, members)
    logs = [None] + [str(out / MEMBERS_DIR / f"{k}.log") for k in range(1, members)]
    context = multiprocessing.get_context("spawn")
    errors = context.SimpleQueue()
    processes = [
        context.Process(
            target=_member,
            args=(_member_args(args, k, out, resume), k, threads, logs[k], errors, os.getpid()),
            daemon=False,
        )
        for k in range(members)
    ]
    for process in processes:
        process.start()
    try:
        _wait(processes, errors)
    except KeyboardInterrupt:
        for process in processes:
            process.join()  # each member saves its state and stops on the same interrupt
        raise
    combine_trained([str(d) for d in directories], str(out))
