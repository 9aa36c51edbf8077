"""A token-level mixture of autoregressive decoders: the decoder of an ensemble's answer distribution.

At every position the next-token distribution is the average of the members' next-token distributions,

    log p(a_t | a_<t) = logsumexp_k log_softmax(logits_k) - log K,

returned as the logits (already normalized), so the string distribution that is scored is exactly the one that is
sampled and beam-searched (as NMT ensembles decode). Each member keeps its own context (the mixed context is the
members' contexts side by side), its own memory (:class:`MixedMemory`) and its own cached state.

Example:
    >>> import torch
    >>> from retro.nets import GRUDecoder
    >>> parts = [StringDistribution(GRUDecoder(4, c, 8), torch.zeros(2, c), 5, 3) for c in (2, 3)]
    >>> mixed = mixed_string_distribution(parts)
    >>> mixed.context.shape, mixed.log_prob(mixed.sample()).shape
    (torch.Size([2, 5]), torch.Size([2]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from retro.distributions import Memory, StringDistribution
from retro.errors import RetroError

__all__ = ["MixedDecoder", "MixedMemory", "mixed_string_distribution", "select_state_rows"]


class MixedMemory(NamedTuple):
    """The members' memories (``None`` for a member whose decoder reads none), flattened together."""

    members: tuple[Memory | None, ...]

    def flat(self, shape: torch.Size) -> MixedMemory:
        """Each member's memory flattened for a batch of ``shape`` (see :meth:`Memory.flat`)."""
        return MixedMemory(tuple(None if m is None else m.flat(shape) for m in self.members))


def select_state_rows(decoder: nn.Module, state: Any, index: torch.Tensor, rows: int, who: str) -> Any:
    """Rows ``index`` of a decoder's ``state`` of ``rows`` rows: its ``reorder_state`` when it has one, else every
    tensor in the state indexed in dim 0 (a :class:`RetroError` from ``who`` when a tensor there lacks the rows)."""
    if hasattr(decoder, "reorder_state"):
        return decoder.reorder_state(state, index)

    def select(x):
        if isinstance(x, torch.Tensor):
            if x.dim() == 0 or x.shape[0] != rows:
                raise RetroError(
                    f"{who}: {type(decoder).__name__} has no reorder_state and its state holds a tensor of "
                    f"shape {tuple(x.shape)} without the batch ({rows} rows) in dim 0"
                )
            return x.index_select(0, index)
        if isinstance(x, (tuple, list)):
            return type(x)(select(y) for y in x)
        return x

    return select(state)


def _member_inputs(memory: MixedMemory | None, k: int) -> dict[str, Any]:
    own = None if memory is None else memory.members[k]
    return {} if own is None else {"memory": own}


class MixedDecoder(nn.Module):
    """The average of ``decoders``' next-token distributions (see the module docstring).

    Args:
        decoders: the members' decoders, over one vocabulary.
        widths: each member's context width; the mixed context is theirs concatenated in this order.
    """

    def __init__(self, decoders: Sequence[nn.Module], widths: Sequence[int]):
        super().__init__()
        if len(decoders) != len(widths) or not decoders:
            raise ValueError("MixedDecoder needs one context width per decoder, and a decoder")
        sizes = {int(d.vocab_size) for d in decoders}
        if len(sizes) != 1:
            raise RetroError(f"mixed decoder: the members' vocabularies differ in size ({sorted(sizes)})")
        self.members = nn.ModuleList(decoders)
        self.widths = tuple(int(w) for w in widths)
        self.vocab_size = sizes.pop()
        self.bos = self.vocab_size  # mapped to each member's own start id
        self.log_count = math.log(len(decoders))

    def _contexts(self, context: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return context.split(self.widths, dim=-1)

    def _mix(self, log_probs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(log_probs).logsumexp(0) - self.log_count

    def forward(
        self, context: torch.Tensor, tokens: torch.Tensor, memory: MixedMemory | None = None
    ) -> torch.Tensor:
        """log p of every token at every position ``[N, T, V]`` (normalized: usable as logits)."""
        return self._mix(
            [
                decoder(part, tokens, **_member_inputs(memory, k)).log_softmax(-1)
                for k, (decoder, part) in enumerate(zip(self.members, self._contexts(context)))
            ]
        )

    def token_log_probs(
        self, context: torch.Tensor, tokens: torch.Tensor, memory: MixedMemory | None = None
    ) -> torch.Tensor:
        """log p of ``tokens[N, T]`` at each position ``[N, T]``, from each member's fast path where it has one."""
        picked = []
        for k, (decoder, part) in enumerate(zip(self.members, self._contexts(context))):
            extra = _member_inputs(memory, k)
            if hasattr(decoder, "token_log_probs"):
                picked.append(decoder.token_log_probs(part, tokens, **extra))
            else:
                logits = decoder(part, tokens, **extra)
                picked.append(logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1))
        return self._mix(picked)

    def init_state(self, context: torch.Tensor, memory: MixedMemory | None = None):
        states = tuple(
            decoder.init_state(part, **_member_inputs(memory, k))
            for k, (decoder, part) in enumerate(zip(self.members, self._contexts(context)))
        )
        return context.shape[0], states

    def step(self, state, previous: torch.Tensor):
        rows, states = state
        log_probs, stepped = [], []
        for decoder, own in zip(self.members, states):
            theirs = previous.masked_fill(previous == self.bos, decoder.bos)
            logits, own = decoder.step(own, theirs)
            log_probs.append(logits.log_softmax(-1))
            stepped.append(own)
        return self._mix(log_probs), (rows, tuple(stepped))

    def reorder_state(self, state, index: torch.Tensor):
        """The state of rows ``index`` (e.g. the parents of a beam's hypotheses), each member's reordered."""
        rows, states = state
        return len(index), tuple(
            select_state_rows(decoder, own, index, rows, "mixed decoder")
            for decoder, own in zip(self.members, states)
        )


def mixed_string_distribution(parts: Sequence[StringDistribution]) -> StringDistribution:
    """The string distribution whose decoder averages the decoders of ``parts`` (one per member) token by token.

    The parts must agree on ``max_length`` and EOS and be untempered (temper the mixture instead); their batch
    shapes broadcast together (a member's latent particles, another's enumerated values).
    """
    first = parts[0]
    for k, part in enumerate(parts):
        if not isinstance(part, StringDistribution):
            raise RetroError(
                f"ensemble member {k}: its answer site is a {type(part).__name__}, not a StringDistribution"
            )
        if (part.max_length, part.eos) != (first.max_length, first.eos):
            raise RetroError(
                f"ensemble member {k}: answers of at most {part.max_length} tokens ending in EOS {part.eos}, "
                f"member 0: {first.max_length} tokens, EOS {first.eos}"
            )
        if part.temperature != 1.0:
            raise RetroError(f"ensemble member {k}: its answer distribution is tempered ({part.temperature})")
    shape = torch.broadcast_shapes(*(part.batch_shape for part in parts))
    context = torch.cat([part.context.expand(shape + part.context.shape[-1:]) for part in parts], dim=-1)
    memories = tuple(part.memory for part in parts)
    memory = None if all(m is None for m in memories) else MixedMemory(memories)
    decoder = MixedDecoder([part.decoder for part in parts], [part.context.shape[-1] for part in parts])
    return StringDistribution(decoder, context, first.max_length, first.eos, memory=memory)
