"""Keyed random streams: each answer's random numbers depend only on (seed, its index in the input, particle, site,
element), never on how the work was cut into batches, chunks, length buckets or processes.

A counter-based generator (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"): a uniform is a
hash of its key, computed for a whole ``[K, B, E]`` block with integer tensor ops. The hash is a 32-bit
integer mixer (Wellons' "lowbias32": xor-shifts and odd multiplications) chained over the key's parts, in int64
tensors masked to 32 bits after every multiplication (so a wrapped-around product is harmless). Two hashes of the
key give the 53 bits of a float64 uniform in (0, 1). Within one answer, distinct (particle, element) pairs get
distinct keys up to rare 32-bit collisions.

:class:`KeyedSampling` is a Pyro messenger that draws every unobserved sample site's value from these uniforms by
inverse CDF: ``icdf`` where the distribution has one (Normal: in float64, differentiable in loc and scale),
Categorical by cumulative sums and ``searchsorted``, Bernoulli by comparison; wrapped in ``Independent``,
expanded or masked distributions alike. Any other distribution is a clear error.
"""

from __future__ import annotations

import math
import zlib

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from retro.errors import RetroError

__all__ = ["keyed_uniforms", "keyed_normals", "site_key", "KeyedSampling"]

_MASK32 = 0xFFFFFFFF
_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)
_STREAMS = (0x243F6A88, 0x85A308D3)  # the two halves of a float64 uniform (digits of pi)
_TWO_POW_53 = float(2**53)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash (lowbias32) of ``0 <= x < 2^32``, in place on ``x`` (a fresh tensor).

    A 32-bit by 32-bit product can exceed int64: it wraps around (two's complement) and the mask keeps its low
    32 bits, which are exact (the tests compare with Python integers)."""
    x.bitwise_xor_(x >> 16).mul_(_MULTIPLIERS[0]).bitwise_and_(_MASK32)
    x.bitwise_xor_(x >> 15).mul_(_MULTIPLIERS[1]).bitwise_and_(_MASK32)
    return x.bitwise_xor_(x >> 16)


def _absorb(state: torch.Tensor, value: torch.Tensor, wide: bool = True) -> torch.Tensor:
    """Chain one more key part (int64 of up to 63 bits, in two 32-bit halves; ``wide=False``: below 2^32) into the
    hash state (a new tensor)."""
    state = _mix(state ^ (value & _MASK32))
    if wide:
        state = _mix(state ^ ((value >> 32) & _MASK32) ^ 0x9E3779B9)
    return state


def site_key(name: str) -> int:
    """A stable 32-bit key for a site name (the same in every process and Python run)."""
    return zlib.crc32(name.encode("utf-8"))


def keyed_uniforms(
    seed: int,
    answer_ids: torch.Tensor,
    particle_ids: torch.Tensor,
    site: int,
    num_elements: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniforms in (0, 1), float64, ``[K, B, E]``: entry ``[k, b, e]`` depends only on ``(seed, answer_ids[b],
    particle_ids[k], site, e)``.

    Args:
        seed: the stream's seed (a non-negative integer below 2^63).
        answer_ids: ``Tensor[B]`` of each answer's index in the whole input.
        particle_ids: ``Tensor[K]`` of each particle's (or chain's) global index.
        site: the site's key (:func:`site_key`), or any integer naming a stream of draws (e.g. an AIS transition).
        num_elements: E, the values drawn per particle and answer.
    """
    device = answer_ids.device if device is None else device
    state = torch.tensor(0x6A09E667, dtype=torch.int64)
    state = _absorb(_absorb(state, torch.tensor(int(seed))), torch.tensor(int(site))).to(device)
    answer_ids = answer_ids.to(device=device, dtype=torch.int64)
    particle_ids = particle_ids.to(device=device, dtype=torch.int64)
    per_answer = _absorb(state, answer_ids, wide=_wide(answer_ids))  # [B]
    per_particle = _absorb(per_answer[None, :], particle_ids[:, None], wide=_wide(particle_ids))  # [K, B]
    # the element enters through the two output hashes only (a Weyl sequence): one hash less per value drawn
    elements = (torch.arange(num_elements, dtype=torch.int64, device=device) * 0x9E3779B9) & _MASK32
    keyed = per_particle[:, :, None] ^ elements  # [K, B, E]
    high = _mix(keyed ^ _STREAMS[0]).bitwise_right_shift_(5)  # 27 bits
    low = _mix(keyed.bitwise_xor_(_STREAMS[1])).bitwise_right_shift_(6)  # 26 bits, from an independent hash
    return high.mul_(2**26).add_(low).to(torch.float64).add_(0.5).div_(_TWO_POW_53)


def _wide(ids: torch.Tensor) -> bool:
    """Whether some id needs more than 32 bits (the high halves of smaller ids are all zero: skip them)."""
    return len(ids) > 0 and (int(ids.max()) > _MASK32 or int(ids.min()) < 0)


def keyed_normals(
    seed: int, answer_ids: torch.Tensor, particle_ids: torch.Tensor, site: int, num_elements: int, device=None
) -> torch.Tensor:
    """Standard normal draws, float64, ``[K, B, E]``, keyed like :func:`keyed_uniforms`."""
    u = keyed_uniforms(seed, answer_ids, particle_ids, site, num_elements, device)
    return math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)


def _leaf(fn: dist.Distribution) -> dist.Distribution:
    """Strip ``Independent``, masking and expansion wrappers (they do not change how one value is drawn)."""
    while isinstance(fn, dist.Independent | dist.MaskedDistribution | dist.ExpandedDistribution) or (
        type(fn).__name__ in ("Independent", "MaskedDistribution", "ExpandedDistribution")
    ):
        fn = fn.base_dist
    return fn


def _draw(name: str, fn: dist.Distribution, u: torch.Tensor) -> torch.Tensor:
    """A value of ``fn`` (shape ``batch_shape + event_shape``) from uniforms ``u`` of that shape, by inverse CDF."""
    shape = fn.batch_shape + fn.event_shape
    leaf = _leaf(fn)
    try:
        leaf = leaf.expand(shape[: len(shape) - len(leaf.event_shape)])
    except (NotImplementedError, RuntimeError, ValueError) as error:
        raise RetroError(
            f"keyed sampling: site {name!r}: cannot expand {type(leaf).__name__}: {error}"
        ) from None
    if leaf.event_shape:
        raise RetroError(
            f"keyed sampling: site {name!r} has a multivariate {type(leaf).__name__}; only distributions drawn "
            "element by element (Normal and others with icdf, Categorical, Bernoulli) can be keyed"
        )
    if isinstance(leaf, dist.Normal):
        z = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)  # in float64: no rounding of u to 0 or 1
        return leaf.loc + leaf.scale * z.to(leaf.loc.dtype)
    if isinstance(leaf, dist.Categorical):
        cdf = leaf.probs.to(torch.float64).cumsum(-1)
        index = torch.searchsorted(cdf, (u * cdf[..., -1:].squeeze(-1)).unsqueeze(-1)).squeeze(-1)
        return index.clamp(max=leaf.probs.shape[-1] - 1)
    if isinstance(leaf, dist.Bernoulli):
        return (u < leaf.probs.to(torch.float64)).to(leaf.probs.dtype)
    try:
        dtype = leaf.mean.dtype
        tiny = torch.finfo(dtype).eps
        return leaf.icdf(u.to(dtype).clamp(tiny, 1 - tiny))
    except NotImplementedError:
        raise RetroError(
            f"keyed sampling: site {name!r}: {type(leaf).__name__} has no inverse CDF; keyed streams draw "
            "Normal (and other distributions with icdf), Categorical and Bernoulli sites"
        ) from None


class KeyedSampling(Messenger):
    """Draw every unobserved sample site from keyed streams (see the module docstring).

    The sites' batch shape must be ``[K, B]`` (broadcastable): particles in the plate at ``dim=-2``, answers at
    ``dim=-1``, as in :mod:`retro.inference.log_weights`.

    Args:
        seed: the stream's seed.
        answer_ids: ``Tensor[B]``, each answer's index in the whole input.
        particle_ids: ``Tensor[K]``, each particle's global index (chunks of particles pass their offsets).
    """

    def __init__(self, seed: int, answer_ids: torch.Tensor, particle_ids: torch.Tensor):
        super().__init__()
        self.seed, self.answer_ids, self.particle_ids = seed, answer_ids, particle_ids

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None or msg["done"] or site_is_subsample(msg):
            return
        fn, name = msg["fn"], msg["name"]
        particles, answers = len(self.particle_ids), len(self.answer_ids)
        batch = fn.batch_shape
        if len(batch) < 2:
            batch = torch.Size([1] * (2 - len(batch))) + batch
        try:
            target = torch.broadcast_shapes(batch[:2], (particles, answers)) + batch[2:]
        except RuntimeError:
            raise RetroError(
                f"keyed sampling: site {name!r} has batch shape {tuple(fn.batch_shape)}; expected "
                f"[{particles}, {answers}] (particles x answers)"
            ) from None
        if target[:2] != (particles, answers):
            raise RetroError(
                f"keyed sampling: site {name!r}: batch shape {tuple(fn.batch_shape)} is not keyable"
            )
        fn = fn.expand(target)
        shape = fn.batch_shape + fn.event_shape
        elements = math.prod(shape[2:])
        device = _device(fn)
        u = keyed_uniforms(self.seed, self.answer_ids, self.particle_ids, site_key(name), elements, device)
        msg["value"] = _draw(name, fn, u.reshape(shape))
        msg["done"] = True


def _device(fn: dist.Distribution) -> torch.device:
    leaf = _leaf(fn)
    for attribute in ("loc", "probs", "logits", "scale", "rate", "low"):
        value = getattr(leaf, attribute, None)
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")
