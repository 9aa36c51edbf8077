"""The torch.distributed glue: join a run started by ``torchrun``, and the few collectives retro needs.

retro scales out on PyTorch's own engine (``torch.distributed``, launched by ``torchrun``; gloo on CPU, NCCL on
CUDA), never a home-made pool. A process reads its place from the environment ``torchrun`` sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) with :func:`join_from_environment`; without
them it is a world of one (:data:`SINGLE`) and every collective below is a no-op, so the library has one code path.

Joining has a short timeout (``join_timeout_s``): a rank that cannot reach the rendezvous fails within seconds
with a one-line :class:`~retro.errors.RetroError`, instead of hanging for torch's default half hour. Collectives
afterwards get a long timeout (rank 0 may evaluate for minutes while the others wait).

Example (two processes on one machine)::

    torchrun --nproc_per_node 2 -m retro train --imitator latent --data human:typist --out run
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch

from retro.errors import RetroError

__all__ = [
    "World",
    "SINGLE",
    "current_world",
    "join_from_environment",
    "leave",
    "DEFAULT_JOIN_TIMEOUT_S",
    "COLLECTIVE_TIMEOUT_S",
]

DEFAULT_JOIN_TIMEOUT_S = 20.0
COLLECTIVE_TIMEOUT_S = 3600.0  # a collective may wait this long for rank 0 (evaluation, checkpoint writing)


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size`` processes; collectives run on ``device``.

    With ``size == 1`` every method is the identity, so code written for many processes runs unchanged in one.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0: the process that evaluates, writes files and decides when to stop."""
        return self.rank == 0

    def sum_(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor, in place, by its sum over all ranks (one flat all-reduce for the whole list)."""
        if self.size == 1 or not tensors:
            return
        import torch.distributed as dist

        if len(tensors) == 1 and _is_flat_float64(tensors[0], self.device):  # reduced where it lies
            dist.all_reduce(tensors[0])
            return
        flat = _flat_float64(tensors, self.device)
        dist.all_reduce(flat)
        _copy_back(tensors, flat)

    def sum_each_(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor, in place, by its sum over all ranks, in its own dtype (one all-reduce per tensor,
        all issued before any is waited for). Each must be contiguous and on :attr:`device`. Cheaper than
        :meth:`sum_` for a large float32 tensor (half the bytes, no float64 copies); for two ranks the float32 sum
        is the float64 sum rounded to float32, bit for bit (an IEEE sum of two numbers is correctly rounded)."""
        if self.size == 1 or not tensors:
            return
        import torch.distributed as dist

        for t in tensors:
            if not (t.is_contiguous() and t.device == self.device):
                raise ValueError("sum_each_ needs contiguous tensors on the world's device")
        for work in [dist.all_reduce(t, async_op=True) for t in tensors]:
            work.wait()

    def decide(self, flag: bool) -> bool:
        """Rank 0's ``flag``, on every rank (e.g. "the time budget is spent: stop after this step")."""
        if self.size == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def identical(self, tensors: list[torch.Tensor]) -> bool:
        """Whether ``tensors`` hold the same values on every rank (compared through two checksums)."""
        if self.size == 1:
            return True
        import torch.distributed as dist

        flat = torch.cat([t.detach().reshape(-1).to(self.device, torch.float64) for t in tensors])
        weights = torch.arange(1, flat.numel() + 1, device=self.device, dtype=torch.float64).remainder_(97)
        checksum = torch.stack([flat.sum(), (flat * weights).sum()])
        low, high = checksum.clone(), checksum.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        return bool(torch.equal(low, high))

    def broadcast_(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite each tensor, in place, with rank 0's values."""
        if self.size == 1 or not tensors:
            return
        import torch.distributed as dist

        flat = _flat_float64(tensors, self.device)
        dist.broadcast(flat, src=0)
        with torch.no_grad():
            _copy_back(tensors, flat)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()


SINGLE = World()


def _flat_float64(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The tensors' values in one float64 vector on ``device`` (a single concatenation, whatever their dtypes)."""
    flat = torch.cat([t.detach().reshape(-1).to(device) for t in tensors])  # promotes to the widest dtype
    return flat.to(torch.float64)


def _is_flat_float64(tensor: torch.Tensor, device: torch.device) -> bool:
    return tensor.dtype == torch.float64 and tensor.is_contiguous() and tensor.device == device


def _copy_back(tensors: list[torch.Tensor], flat: torch.Tensor) -> None:
    """Write ``flat``'s consecutive parts into ``tensors``, each in its own dtype (rounded as ``.to`` rounds)."""
    for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        t.copy_(part.view(t.shape))


def current_world() -> World:
    """The world this process joined (:func:`join_from_environment`), or :data:`SINGLE`."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    backend = dist.get_backend()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    return World(dist.get_rank(), dist.get_world_size(), local_rank, device)


def _environment_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise RetroError(f"the environment variable {name} must be an integer, got {value!r}") from None


def join_from_environment(
    join_timeout_s: float = DEFAULT_JOIN_TIMEOUT_S, backend: str | None = None
) -> World:
    """Join the run described by the ``torchrun`` environment, or return :data:`SINGLE` outside one.

    Args:
        join_timeout_s: seconds to reach the rendezvous (and the other ranks) before failing.
        backend: ``"gloo"`` or ``"nccl"``; default NCCL when CUDA is available, else gloo.

    Raises:
        RetroError: the environment is incomplete, or the rendezvous cannot be reached in time.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return current_world()
    if "WORLD_SIZE" not in os.environ:
        return SINGLE
    size, rank = _environment_int("WORLD_SIZE"), _environment_int("RANK")
    if size == 1:
        return SINGLE
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RetroError(
            f"a distributed run needs {' and '.join(missing)} in the environment (torchrun sets them)"
        )
    if not dist.is_available():
        raise RetroError("this PyTorch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    address, port = os.environ["MASTER_ADDR"], _environment_int("MASTER_PORT")
    where = f"{address}:{port}"
    # Under torchrun the launcher's agent already serves the store; otherwise rank 0 serves it.
    serve = rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
    try:
        store = dist.TCPStore(
            address,
            port,
            size,
            is_master=serve,
            timeout=timedelta(seconds=join_timeout_s),
            wait_for_workers=False,
        )
        dist.init_process_group(
            backend,
            store=store,
            rank=rank,
            world_size=size,
            timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S),
        )
        dist.barrier()  # every rank has joined: from here on, collectives may wait long
    except (RuntimeError, ValueError, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RetroError(
            f"rank {rank} of {size} could not join the distributed run at {where} within "
            f"{join_timeout_s:g} s ({reason[:160]})"
        ) from None
    store.set_timeout(timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    return World(rank, size, local_rank, device)


def leave() -> None:
    """Leave the distributed run (if this process joined one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
