"""The whole-string distribution: one Pyro sample site per answer.

``StringDistribution`` is a distribution over all strings of a codec up to ``max_length`` tokens, driven by an
autoregressive decoder conditioned on a context vector. ``log_prob`` scores a whole padded batch in one
teacher-forced pass; ``sample`` decodes ancestrally with the decoder's cached state. At position ``max_length`` EOS
is forced (probability 1), so the probabilities of all strings sum to one and a longer string has probability 0.

A decoder is any ``nn.Module`` with

* ``vocab_size`` and ``bos`` (an input id meaning "start", outside the vocabulary is fine),
* ``forward(context[N, C], tokens[N, T]) -> logits[N, T, V]``: logits at position ``t`` given ``tokens[:, :t]``,
* ``init_state(context[N, C]) -> state`` and ``step(state, previous[N]) -> (logits[N, V], state)``,
* optionally ``token_log_probs(context[N, C], tokens[N, T]) -> [N, T]``, a faster exact shortcut for
  ``log_softmax(forward(...))`` gathered at ``tokens`` (used when the temperature is 1).

A decoder that attends to per-question states (:class:`Memory`, e.g. the question encoder's states) gets them as
a ``memory`` keyword in ``forward``, ``token_log_probs`` and ``init_state`` whenever the distribution holds one.
The memory is not copied per particle: it arrives as ``Memory[M, S, D]`` and row ``n`` of the context uses memory
row ``n % M`` (particles and enumerated values lead, questions trail, as the batch is flattened row-major).

Example:
    >>> import torch
    >>> from retro.nets import GRUDecoder
    >>> decoder = GRUDecoder(vocab_size=4, context_dim=3, hidden_dim=8)
    >>> dist = StringDistribution(decoder, torch.zeros(5, 3), max_length=6, eos=3)
    >>> x = dist.sample(torch.Size([2]))  # particles x answers
    >>> dist.log_prob(x).shape
    torch.Size([2, 5])
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from retro.errors import RetroError

__all__ = ["StringDistribution", "Memory", "smoothed_labels"]

_LABEL_SMOOTHING = contextvars.ContextVar("retro_label_smoothing", default=0.0)


@contextlib.contextmanager
def smoothed_labels(epsilon: float) -> Iterator[None]:
    """Within the block, :meth:`StringDistribution.log_prob` is the training surrogate of label smoothing
    (Szegedy et al. 2016): each decision's ``log p(token)`` becomes ``(1 - epsilon) log p(token) + epsilon *
    mean_v log p(v)`` over the tokens the decoder allows there (EOS included): minus the cross-entropy against
    the one-hot target mixed with ``epsilon`` of a uniform one. That is not a log probability: training steps
    only, never scoring (``epsilon = 0`` changes nothing)."""
    if not 0 <= epsilon < 1:
        raise RetroError(f"label smoothing must be in [0, 1), got {epsilon}")
    token = _LABEL_SMOOTHING.set(float(epsilon))
    try:
        yield
    finally:
        _LABEL_SMOOTHING.reset(token)


class Memory(NamedTuple):
    """Per-question states an attention decoder reads: ``states[*batch, S, D]`` and ``mask[*batch, S]`` (True at
    the real positions). Its batch shape broadcasts against the distribution's (it usually lacks the particles)."""

    states: torch.Tensor
    mask: torch.Tensor

    def flat(self, shape: torch.Size) -> Memory:
        """``Memory[M, S, D]`` for a batch of ``shape`` flattened row-major: row ``n`` reads memory row ``n % M``.

        When the memory's batch shape is a suffix of ``shape`` (after dropping its leading 1s), ``M`` is its own
        size and nothing is copied; otherwise it is expanded to ``shape`` (``M = N``)."""
        own = self.states.shape[:-2]
        while own and own[0] == 1:
            own = own[1:]
        if len(own) <= len(shape) and tuple(shape[len(shape) - len(own) :]) == tuple(own):
            return Memory(
                self.states.reshape((-1,) + self.states.shape[-2:]),
                self.mask.reshape((-1,) + self.mask.shape[-1:]),
            )
        try:
            states = self.states.expand(shape + self.states.shape[-2:]).reshape(
                (-1,) + self.states.shape[-2:]
            )
        except RuntimeError:
            raise RetroError(
                f"memory of batch shape {tuple(self.states.shape[:-2])} does not broadcast to the strings' batch "
                f"shape {tuple(shape)}"
            ) from None
        return Memory(states, self.mask.expand(shape + self.mask.shape[-1:]).reshape(-1, self.mask.shape[-1]))


class StringDistribution(TorchDistribution):
    """Distribution over EOS-terminated token strings of length at most ``max_length``.

    Args:
        decoder: an autoregressive decoder (see module docstring).
        context: ``Tensor[*batch_shape, C]`` conditioning each string.
        max_length: the longest string (in tokens, EOS excluded) with non-zero probability.
        eos: the EOS token id.
        temperature: logits are divided by it, in ``log_prob`` and ``sample`` alike (so the tempered
            distribution is still normalized and its samples are scored consistently).
        memory: per-question states for an attention decoder (see the module docstring).
    """

    arg_constraints: dict = {}
    has_enumerate_support = False

    def __init__(
        self,
        decoder: torch.nn.Module,
        context: torch.Tensor,
        max_length: int,
        eos: int,
        temperature: float = 1.0,
        memory: Memory | None = None,
        validate_args: bool | None = None,
    ):
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.decoder = decoder
        self.context = context
        self.max_length = int(max_length)
        self.eos = int(eos)
        self.temperature = float(temperature)
        self.memory = memory
        super().__init__(context.shape[:-1], torch.Size([self.max_length + 1]), validate_args=False)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return constraints.independent(constraints.integer_interval(0, self.eos), 1)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        context = self.context.expand(batch_shape + self.context.shape[-1:])
        return StringDistribution(
            self.decoder, context, self.max_length, self.eos, self.temperature, memory=self.memory
        )

    def with_temperature(self, temperature: float) -> StringDistribution:
        """The same distribution at another ``temperature``."""
        return StringDistribution(
            self.decoder, self.context, self.max_length, self.eos, temperature, memory=self.memory
        )

    def decoder_inputs(self, shape: torch.Size | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """(context ``[N, C]`` of the batch ``shape`` flattened, the decoder's extra keyword arguments)."""
        shape = self.batch_shape if shape is None else torch.Size(shape)
        context = self.context.expand(shape + self.context.shape[-1:]).reshape(-1, self.context.shape[-1])
        return context, ({} if self.memory is None else {"memory": self.memory.flat(shape)})

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log probability of EOS-padded strings ``value[..., W]`` (any width with an EOS in each row)."""
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        width = value.shape[-1]
        tokens = value.expand(shape + (width,)).reshape(-1, width)
        is_eos = tokens == self.eos
        has_eos = is_eos.any(-1)
        lengths = torch.where(has_eos, is_eos.long().argmax(-1), torch.full_like(tokens[:, 0], width))
        # Only positions < max_length are decisions; EOS at max_length is forced.
        steps = min(int(lengths.max()) + 1 if lengths.numel() else 1, self.max_length, width)
        picked = self._token_log_probs(*self.decoder_inputs(shape), tokens[:, :steps])
        positions = torch.arange(steps, device=tokens.device)
        picked = picked.masked_fill(positions > lengths[:, None], 0.0)
        total = picked.sum(-1)
        impossible = (~has_eos) | (lengths > self.max_length)
        total = total.masked_fill(impossible, float("-inf"))
        return total.reshape(shape)

    def _token_log_probs(
        self, context: torch.Tensor, extra: dict[str, Any], tokens: torch.Tensor
    ) -> torch.Tensor:
        epsilon = _LABEL_SMOOTHING.get()
        if epsilon == 0 and self.temperature == 1.0 and hasattr(self.decoder, "token_log_probs"):
            return self.decoder.token_log_probs(context, tokens, **extra)
        logits = self.decoder(context, tokens, **extra)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        log_probs = logits.log_softmax(-1)
        picked = log_probs.gather(-1, tokens[..., None]).squeeze(-1)
        if epsilon == 0:
            return picked
        allowed = torch.isfinite(log_probs)  # uniform over the tokens the decoder allows at each position
        uniform = log_probs.masked_fill(~allowed, 0.0).sum(-1) / allowed.sum(-1)
        return (1 - epsilon) * picked + epsilon * uniform

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """Ancestral sampling, one step per position for all strings at once; stops when every string ended."""
        shape = torch.Size(sample_shape) + self.batch_shape
        context, extra = self.decoder_inputs(shape)
        n = context.shape[0]
        out = torch.full((n, self.max_length + 1), self.eos, dtype=torch.long, device=context.device)
        done = torch.zeros(n, dtype=torch.bool, device=context.device)
        previous = torch.full((n,), self.decoder.bos, dtype=torch.long, device=context.device)
        state = self.decoder.init_state(context, **extra)
        for t in range(self.max_length):
            logits, state = self.decoder.step(state, previous)
            if self.temperature != 1.0:
                logits = logits / self.temperature
            token = torch.distributions.Categorical(logits=logits).sample()
            token = token.masked_fill(done, self.eos)
            out[:, t] = token
            done |= token == self.eos
            if bool(done.all()):
                break
            previous = token
        return out.reshape(shape + (self.max_length + 1,))
