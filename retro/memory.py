"""Sizes checked before allocation: what a configuration value or a flag would allocate is estimated first and
compared with a memory limit the user can raise, so a two-number edit of a file cannot ask for terabytes.

The limit is the environment variable ``RETRO_MEMORY_LIMIT`` (bytes, or with a suffix: ``64G``, ``1.5T``), else the
memory the machine has available at the time (Linux ``MemAvailable``, else the physical memory): a real model that
fits the machine passes, and no fixed cap stands in the way of a bigger machine.

Example:
    >>> check_allocation(8 * 10**6, "a test tensor")  # 8 MB: fine
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable

import torch
from torch.overrides import TorchFunctionMode

from retro.errors import RetroError

__all__ = [
    "MemoryLimitError",
    "memory_limit",
    "check_allocation",
    "module_bytes",
    "checked_build",
    "format_bytes",
    "MEMORY_LIMIT_VARIABLE",
]

MEMORY_LIMIT_VARIABLE = "RETRO_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}


class MemoryLimitError(RetroError):
    """A setting would allocate more than the memory limit."""


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1 (``'256.0 TiB'``)."""
    if math.isinf(n):
        return "more bytes than can be counted"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def _available_memory() -> int:
    """Memory the system can give now (``MemAvailable`` on Linux), else the physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every platform says
        return 2**40


def memory_limit() -> int:
    """The memory limit in bytes: ``RETRO_MEMORY_LIMIT`` if set, else the memory available now."""
    text = os.environ.get(MEMORY_LIMIT_VARIABLE, "").strip()
    if not text:
        return _available_memory()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?", text, flags=re.IGNORECASE)
    if not match:
        raise RetroError(f"{MEMORY_LIMIT_VARIABLE}={text!r} is not a size (e.g. 64G, 1.5T, 1000000000)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def check_allocation(nbytes: float, what: str) -> None:
    """Raise :class:`MemoryLimitError` if ``what`` would allocate more than :func:`memory_limit` bytes."""
    limit = memory_limit()
    if nbytes > limit:
        raise MemoryLimitError(
            f"{what} would allocate {format_bytes(nbytes)}, above the memory limit of {format_bytes(limit)} "
            f"(set {MEMORY_LIMIT_VARIABLE} to raise it)"
        )


class _SkipInitialization(TorchFunctionMode):
    """Make in-place (initialization) calls on meta tensors no-ops: on meta they compute nothing anyway, and some
    (``normal_``) would import torch's compiler, seconds of start-up, to do so."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__"):
            first = args[0] if args else next(iter(kwargs.values()), None)
            if isinstance(first, torch.Tensor) and first.is_meta:
                return first
        return func(*args, **kwargs)


def module_bytes(build: Callable[[], torch.nn.Module]) -> int:
    """Bytes of the parameters and buffers of ``build()``, found by building it on the meta device (no memory).

    A size too large even to describe (a shape whose byte count overflows) counts as infinitely large.
    """
    try:
        with torch.device("meta"), _SkipInitialization():
            module = build()
    except RuntimeError as e:
        if "overflow" in str(e).lower():
            return math.inf
        raise
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def checked_build(build: Callable[[], torch.nn.Module], what: str) -> torch.nn.Module:
    """``build()``, after checking on the meta device that its parameters fit under :func:`memory_limit`."""
    check_allocation(module_bytes(build), what)
    return build()
