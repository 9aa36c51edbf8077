"""Neural encoders and decoders over token strings.

Decoders follow the protocol of :mod:`retro.distributions`: ``forward`` for the teacher-forced pass, and
``init_state``/``step`` for ancestral decoding with cached state (GRU hidden state; Transformer key/value cache),
and ``reorder_state`` to select rows of a state (beam search). :class:`AttentionGRUDecoder` also reads the
question encoder's states (a :class:`~retro.distributions.Memory`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from retro.distributions import Memory
from retro.text import StringBatch

__all__ = [
    "GRUDecoder",
    "AttentionGRUDecoder",
    "TransformerDecoder",
    "StringEncoder",
    "NgramEncoder",
    "make_decoder",
    "DECODERS",
]


def _token_inputs(decoder: nn.Module, context: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """A GRU decoder's input at each position: the previous token's embedding plus the projected context."""
    return decoder.dropout(torch.relu(decoder.embed(previous) + decoder.context_in(context).unsqueeze(-2)))


class GRUDecoder(nn.Module):
    """GRU language model conditioned on a context vector (initial state and, every step, the input).

    ``dropout`` acts in training mode only (here on the GRU's inputs and outputs; in the other decoders and the
    encoder likewise, on the Transformer's residual branches); :func:`retro.inference.train.train` runs its steps
    in training mode and leaves the modules in eval mode."""

    def __init__(
        self,
        vocab_size: int,
        context_dim: int,
        hidden_dim: int = 128,
        embed_dim: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.bos = vocab_size  # one extra input id
        self.dropout = nn.Dropout(dropout)
        self.embed = nn.Embedding(vocab_size + 1, embed_dim)
        self.context_in = nn.Linear(context_dim, embed_dim)
        self.context_h0 = nn.Linear(context_dim, hidden_dim)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)

    _inputs = _token_inputs

    def forward(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        bos = torch.full_like(tokens[:, :1], self.bos)
        previous = torch.cat([bos, tokens[:, :-1]], dim=1)
        hidden, _ = self.gru(self._inputs(context, previous), self.init_state(context)[0])
        return self.out(self.dropout(hidden))

    def init_state(self, context: torch.Tensor):
        return (torch.tanh(self.context_h0(context)).unsqueeze(0), context)

    def step(self, state, previous: torch.Tensor):
        h, context = state
        x = self._inputs(context, previous[:, None])
        out, h = self.gru(x, h)
        return self.out(self.dropout(out[:, 0])), (h, context)

    def reorder_state(self, state, index: torch.Tensor):
        """The state of rows ``index`` (e.g. the parents of a beam's hypotheses)."""
        h, context = state
        return h.index_select(1, index), context.index_select(0, index)


class AttentionGRUDecoder(nn.Module):
    """Two GRU layers with attention over the question's states between them.

    The lower GRU reads the previous token (and the context vector, as :class:`GRUDecoder`); its output queries
    the memory (scaled dot-product attention, Luong et al. 2015); the upper GRU reads both, so it knows where the
    attention has been, and the output layer sees the upper state and the attended vector. Attending from the lower
    layer (as GNMT does) rather than feeding the last attended vector back as input keeps the teacher-forced pass
    one GRU call per layer over the whole sequence, instead of a Python loop over positions.

    Args:
        vocab_size: answer tokens (EOS included).
        context_dim: width of the context vector (question summary, plus any latent code).
        memory_dim: width of the memory states.
        hidden_dim: width of both GRUs and of the attention.
        embed_dim: width of the token embedding.
        dropout: rate on the GRUs' inputs and outputs, in training mode only.
    """

    def __init__(
        self,
        vocab_size: int,
        context_dim: int,
        memory_dim: int,
        hidden_dim: int = 128,
        embed_dim: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.bos = vocab_size
        self.dropout = nn.Dropout(dropout)
        self.embed = nn.Embedding(vocab_size + 1, embed_dim)
        self.context_in = nn.Linear(context_dim, embed_dim)
        self.context_h0 = nn.Linear(context_dim, 2 * hidden_dim)
        self.lower = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.query = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.key = nn.Linear(memory_dim, hidden_dim, bias=False)
        self.value = nn.Linear(memory_dim, hidden_dim, bias=False)
        self.upper = nn.GRU(2 * hidden_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(2 * hidden_dim, vocab_size)
        self.scale = 1.0 / math.sqrt(hidden_dim)

    _inputs = _token_inputs

    def _initial_hidden(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lower, upper = torch.tanh(self.context_h0(context)).unsqueeze(0).chunk(2, dim=-1)
        return lower.contiguous(), upper.contiguous()

    def _attend(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor):
        """Attended values ``[N, T, H]`` for queries ``[N, T, H]`` over ``M`` memories (row ``n`` reads ``n % M``)."""
        n, t, h = queries.shape
        m = keys.shape[0]
        # Group rows by memory so each memory's keys serve all its rows in one matrix product (no copy per particle).
        q = self.query(queries).view(n // m, m, t, h).transpose(0, 1).reshape(m, -1, h)
        scores = torch.bmm(q, keys.transpose(1, 2)) * self.scale  # [M, G*T, S]
        weights = scores.masked_fill(~mask[:, None, :], -math.inf).softmax(-1)
        return torch.bmm(weights, values).view(m, n // m, t, h).transpose(0, 1).reshape(n, t, h)

    def forward(self, context: torch.Tensor, tokens: torch.Tensor, memory: Memory) -> torch.Tensor:
        bos = torch.full_like(tokens[:, :1], self.bos)
        previous = torch.cat([bos, tokens[:, :-1]], dim=1)
        h_lower, h_upper = self._initial_hidden(context)
        lower, _ = self.lower(self._inputs(context, previous), h_lower)
        lower = self.dropout(lower)
        attended = self._attend(lower, self.key(memory.states), self.value(memory.states), memory.mask)
        upper, _ = self.upper(torch.cat([lower, attended], dim=-1), h_upper)
        return self.out(self.dropout(torch.cat([upper, attended], dim=-1)))

    def init_state(self, context: torch.Tensor, memory: Memory):
        keys, values, mask = self.key(memory.states), self.value(memory.states), memory.mask
        if context.shape[0] != keys.shape[0]:  # row n reads memory n % M: one memory row per decoder row
            rows = torch.arange(context.shape[0], device=context.device) % keys.shape[0]
            keys, values, mask = (
                keys.index_select(0, rows),
                values.index_select(0, rows),
                mask.index_select(0, rows),
            )
        # The memories are kept per group of consecutive rows that read the same one (a question's beams), not
        # copied per row: reordering a beam then moves its hidden states, not a copy of the question's states.
        return (*self._initial_hidden(context), context, keys, values, mask)

    def step(self, state, previous: torch.Tensor):
        h_lower, h_upper, context, keys, values, mask = state
        lower, h_lower = self.lower(self._inputs(context, previous[:, None]), h_lower)
        lower = self.dropout(lower)
        attended = self._attend_grouped(lower, keys, values, mask)
        upper, h_upper = self.upper(torch.cat([lower, attended], dim=-1), h_upper)
        logits = self.out(self.dropout(torch.cat([upper[:, 0], attended[:, 0]], dim=-1)))
        return logits, (h_lower, h_upper, context, keys, values, mask)

    def _attend_grouped(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ):
        """Attended values ``[N, 1, H]`` where ``G`` memories serve ``N = G * g`` rows, row ``n`` reading ``n // g``."""
        n, _, h = queries.shape
        g = n // keys.shape[0]
        q = self.query(queries).view(keys.shape[0], g, h)
        scores = torch.bmm(q, keys.transpose(1, 2)) * self.scale  # [G, g, S]
        weights = scores.masked_fill(~mask[:, None, :], -math.inf).softmax(-1)
        return torch.bmm(weights, values).view(n, 1, h)

    def reorder_state(self, state, index: torch.Tensor):
        """The state of rows ``index`` (e.g. the parents of a beam's hypotheses)."""
        h_lower, h_upper, context, keys, values, mask = state
        owner = index // (h_lower.shape[1] // keys.shape[0])  # the memory each new row reads
        # New rows in runs of equal length reading one memory each (a beam's hypotheses): one memory per run.
        runs = 1 + int((owner[1:] != owner[:-1]).sum()) if len(owner) else 1
        grouped = (
            len(owner) > 0
            and len(owner) % runs == 0
            and bool((owner.view(runs, -1) == owner.view(runs, -1)[:, :1]).all())
        )
        memories = owner.view(runs, -1)[:, 0] if grouped else owner
        return (
            h_lower.index_select(1, index),
            h_upper.index_select(1, index),
            context.index_select(0, index),
            *(x.index_select(0, memories) for x in (keys, values, mask)),
        )


class _CachedSelfAttentionBlock(nn.Module):
    """Pre-LayerNorm causal Transformer block whose keys/values can be cached for step-by-step decoding."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # [N, T, D] -> [N, H, T, D/H]
        n, t, d = x.shape
        return x.view(n, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, cache: tuple | None = None):
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
            attn = nn.functional.scaled_dot_product_attention(q, k, v)  # one new query sees all the past
        else:
            attn = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        n, _, t, _ = attn.shape
        x = x + self.dropout(self.proj(attn.transpose(1, 2).reshape(n, t, -1)))
        x = x + self.dropout(self.mlp(self.norm2(x)))
        return x, (k, v)


class TransformerDecoder(nn.Module):
    """Small causal Transformer; the context vector is added to every position's input."""

    def __init__(
        self,
        vocab_size: int,
        context_dim: int,
        hidden_dim: int = 128,
        layers: int = 2,
        heads: int = 4,
        max_positions: int = 512,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.bos = vocab_size
        self.embed = nn.Embedding(vocab_size + 1, hidden_dim)
        self.position = nn.Embedding(max_positions, hidden_dim)
        self.context_in = nn.Linear(context_dim, hidden_dim)
        self.blocks = nn.ModuleList(
            _CachedSelfAttentionBlock(hidden_dim, heads, dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(hidden_dim)
        self.out = nn.Linear(hidden_dim, vocab_size)
        self.scale = math.sqrt(hidden_dim)

    def _inputs(self, context, previous, start: int):
        positions = torch.arange(start, start + previous.shape[1], device=previous.device)
        return self.embed(previous) + self.position(positions) + self.context_in(context).unsqueeze(1)

    def forward(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        bos = torch.full_like(tokens[:, :1], self.bos)
        x = self._inputs(context, torch.cat([bos, tokens[:, :-1]], dim=1), 0)
        for block in self.blocks:
            x, _ = block(x)
        return self.out(self.norm(x))

    def init_state(self, context: torch.Tensor):
        return (context, 0, [None] * len(self.blocks))

    def step(self, state, previous: torch.Tensor):
        context, position, caches = state
        x = self._inputs(context, previous[:, None], position)
        new_caches = []
        for block, cache in zip(self.blocks, caches):
            x, cache = block(x, cache)
            new_caches.append(cache)
        return self.out(self.norm(x[:, 0])), (context, position + 1, new_caches)

    def reorder_state(self, state, index: torch.Tensor):
        """The state of rows ``index`` (e.g. the parents of a beam's hypotheses)."""
        context, position, caches = state
        caches = [
            None if c is None else (c[0].index_select(0, index), c[1].index_select(0, index)) for c in caches
        ]
        return context.index_select(0, index), position, caches


DECODERS = ("gru", "attention", "transformer")
"""Decoder kinds :func:`make_decoder` builds; only ``"attention"`` reads a memory."""


def make_decoder(
    kind: str,
    vocab_size: int,
    context_dim: int,
    hidden_dim: int,
    memory_dim: int = 0,
    dropout: float = 0.0,
) -> nn.Module:
    """Build a decoder by name (one of :data:`DECODERS`); ``memory_dim`` is for ``"attention"``."""
    if kind == "gru":
        return GRUDecoder(vocab_size, context_dim, hidden_dim, dropout=dropout)
    if kind == "attention":
        if memory_dim < 1:
            raise ValueError(f"an attention decoder needs memory_dim >= 1, got {memory_dim}")
        return AttentionGRUDecoder(vocab_size, context_dim, memory_dim, hidden_dim, dropout=dropout)
    if kind == "transformer":
        return TransformerDecoder(vocab_size, context_dim, hidden_dim, dropout=dropout)
    raise ValueError(f"unknown decoder {kind!r}: expected one of {', '.join(map(repr, DECODERS))}")


class StringEncoder(nn.Module):
    """Bidirectional GRU over a padded string batch -> one vector per string (final states of both directions)."""

    def __init__(self, vocab_size: int, hidden_dim: int = 128, embed_dim: int = 32, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.output_dim = 2 * hidden_dim
        self.dropout = nn.Dropout(dropout)

    def _run(self, batch: StringBatch):
        # Encode each string with its EOS so the empty string has a state too.
        lengths = (batch.lengths + 1).clamp(max=batch.width)
        packed = pack_padded_sequence(
            self.dropout(self.embed(batch.tokens)), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, h = self.gru(packed)  # h: [2, N, H]
        return out, self.dropout(torch.cat([h[0], h[1]], dim=-1)), lengths

    def forward(self, batch: StringBatch) -> torch.Tensor:
        return self._run(batch)[1]

    def encode(self, batch: StringBatch) -> tuple[torch.Tensor, Memory]:
        """(one vector per string ``[N, 2H]``, the states at every position (EOS included) as a memory)."""
        out, summary, lengths = self._run(batch)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=batch.width)
        states = self.dropout(states)
        mask = torch.arange(batch.width, device=lengths.device) < lengths[:, None]
        return summary, Memory(states, mask)


class NgramEncoder(nn.Module):
    """One vector per string, without recurrence: a ReLU layer on every window of ``width`` consecutive token
    embeddings (the string's EOS included, zeros beyond it), max-pooled over the windows.

    About as cheap as the string is long, where :class:`StringEncoder` runs a GRU step per position (the amortized
    guide of ``retro train`` uses this one: a step of the latent imitator with it costs 0-4% more than a step of
    ``seq2seq`` on CMUdict and the misspellings, against 10-14% with GRU encoders). A string's vector does not
    depend on the batch it is in (nothing past its EOS is read).

    Args:
        vocab_size: tokens of the codec (EOS included).
        hidden_dim: width of the output vector.
        embed_dim: width of the token embedding.
        width: tokens per window (odd: centred on each position).
    """

    def __init__(self, vocab_size: int, hidden_dim: int = 128, embed_dim: int = 32, width: int = 3):
        super().__init__()
        if width < 1 or width % 2 == 0:
            raise ValueError(f"an n-gram encoder's window must be an odd number of tokens, got {width}")
        self.width = width
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.window = nn.Linear(width * embed_dim, hidden_dim)
        self.output_dim = hidden_dim

    def forward(self, batch: StringBatch) -> torch.Tensor:
        lengths = (batch.lengths + 1).clamp(max=batch.width)  # the EOS too, so the empty string has a vector
        inside = (torch.arange(batch.width, device=lengths.device) < lengths[:, None])[..., None]  # [N, T, 1]
        side = self.width // 2
        embedded = nn.functional.pad(self.embed(batch.tokens) * inside, (0, 0, side, side))
        windows = torch.cat([embedded[:, i : i + batch.width] for i in range(self.width)], dim=-1)
        return torch.relu(self.window(windows)).masked_fill(~inside, 0.0).amax(1)
