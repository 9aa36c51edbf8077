"""Every tokenization of a string, and a proposal that samples one consistent with it.

With a tokenizer (:class:`retro.pieces.PieceCodec`, a Hugging Face tokenizer's codec) a string is spelled by many
token sequences, and p(string) is the sum of their probabilities. A codec that supports this provides
``token_bytes(token) -> bytes | None``: the bytes a token contributes (``None`` for EOS and special tokens, which
spell nothing and so are never part of a tokenization). :class:`TokenLattice` holds the tokens by their bytes;
over a string's bytes it lists the tokens that can start at each position (a lattice whose paths are the
tokenizations), counts and enumerates the paths with at most ``max_length`` tokens (longer ones have probability
0), and :func:`sample_tokenizations` draws one path per row from a whole-string distribution restricted to the
lattice, token by token with the decoder's cached state: at each step only tokens that keep the rest of the string
reachable within ``max_length`` tokens are allowed, in proportion to the model's own probabilities. The
importance weight of the path, p(path) / q(path), is the product of the allowed mass at each step, so its mean is
the string's marginal probability.

Example:
    >>> from retro.pieces import PieceCodec
    >>> lattice = TokenLattice(PieceCodec(["a", "b", "c", "ab", "bc", "abc"]))
    >>> sorted(lattice.tokenizations(b"abc", max_tokens=3))
    [(0, 1, 2), (0, 4), (3, 2), (5,)]
    >>> lattice.count(b"abc", max_tokens=2)
    3
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from retro.distributions import StringDistribution
from retro.errors import RetroError

__all__ = ["TokenLattice", "sample_tokenizations", "answer_bytes"]

UNREACHABLE = 1 << 30


def answer_bytes(codec, tokens: Sequence[int]) -> bytes:
    """The bytes a token sequence spells (without its EOS)."""
    pieces = []
    for token in tokens:
        piece = codec.token_bytes(int(token))
        if piece is None:
            raise RetroError(f"token {int(token)} ({codec.symbol(int(token))!r}) spells no text")
        pieces.append(piece)
    return b"".join(pieces)


class TokenLattice:
    """A codec's tokens indexed by the bytes they spell.

    Args:
        codec: a codec with ``token_bytes`` and ``eos``. Tokens spelling nothing (``None`` or empty bytes) are left
            out: they add no text, so they are not part of any string's spelling.
    """

    def __init__(self, codec):
        if not hasattr(codec, "token_bytes"):
            raise RetroError(
                f"{type(codec).__name__} has no token_bytes: the marginal over tokenizations needs a codec "
                "that says which bytes each token spells"
            )
        self.eos = int(codec.eos)
        self._by_bytes: dict[bytes, list[int]] = {}
        for token in range(codec.vocab_size):
            piece = codec.token_bytes(token)
            if piece:
                self._by_bytes.setdefault(bytes(piece), []).append(token)
        if not self._by_bytes:
            raise RetroError(f"{type(codec).__name__} has no token that spells text")
        self.longest = max(len(piece) for piece in self._by_bytes)

    def edges(self, data: bytes) -> list[list[tuple[int, int]]]:
        """For each start position ``i < len(data)``: the ``(token, end)`` pairs with ``data[i:end]`` its bytes."""
        return [
            [
                (token, start + size)
                for size in range(1, min(self.longest, len(data) - start) + 1)
                for token in self._by_bytes.get(data[start : start + size], ())
            ]
            for start in range(len(data))
        ]

    def fewest_tokens(self, data: bytes, edges=None) -> list[int]:
        """For each position ``0..len(data)``: the fewest tokens that spell the rest (``UNREACHABLE`` if none)."""
        edges = self.edges(data) if edges is None else edges
        fewest = [UNREACHABLE] * (len(data) + 1)
        fewest[len(data)] = 0
        for start in range(len(data) - 1, -1, -1):
            fewest[start] = min((fewest[end] + 1 for _, end in edges[start]), default=UNREACHABLE)
        return fewest

    def count(self, data: bytes, max_tokens: int) -> int:
        """How many tokenizations of ``data`` have at most ``max_tokens`` tokens."""
        edges = self.edges(data)
        # ways[i][k]: paths from position i to the end with exactly k tokens.
        ways = [[0] * (max_tokens + 1) for _ in range(len(data) + 1)]
        ways[len(data)][0] = 1
        for start in range(len(data) - 1, -1, -1):
            for _, end in edges[start]:
                for k in range(1, max_tokens + 1):
                    ways[start][k] += ways[end][k - 1]
        return sum(ways[0])

    def tokenizations(self, data: bytes, max_tokens: int) -> list[tuple[int, ...]]:
        """Every tokenization of ``data`` with at most ``max_tokens`` tokens (depth-first, pruned)."""
        edges = self.edges(data)
        fewest = self.fewest_tokens(data, edges)
        out: list[tuple[int, ...]] = []

        def extend(position: int, path: tuple[int, ...]) -> None:
            if position == len(data):
                out.append(path)
                return
            for token, end in edges[position]:
                if len(path) + 1 + fewest[end] <= max_tokens:
                    extend(end, path + (token,))

        if fewest[0] <= max_tokens:
            extend(0, ())
        return out


class _Tables:
    """The lattices of a batch of strings as padded tensors: candidates ``[A, P, C]`` (token, end, valid) at each
    position (at the end of a string the one candidate is EOS), and the fewest tokens ``[A, P]`` from there."""

    def __init__(self, lattice: TokenLattice, targets: Sequence[bytes], device):
        edges = [lattice.edges(data) + [[(lattice.eos, len(data))]] for data in targets]
        fewest = [lattice.fewest_tokens(data, e[:-1]) for data, e in zip(targets, edges)]
        positions = max(len(e) for e in edges)
        width = max(len(at) for e in edges for at in e)
        token = torch.zeros(len(targets), positions, width, dtype=torch.long)
        end = torch.zeros(len(targets), positions, width, dtype=torch.long)
        valid = torch.zeros(len(targets), positions, width, dtype=torch.bool)
        least = torch.full((len(targets), positions + 1), UNREACHABLE, dtype=torch.long)
        for a, e in enumerate(edges):
            for p, at in enumerate(e):
                for c, (t, stop) in enumerate(at):
                    token[a, p, c], end[a, p, c], valid[a, p, c] = t, stop, True
            least[a, : len(fewest[a])] = torch.tensor(fewest[a])
        self.token, self.end, self.valid, self.least = (x.to(device) for x in (token, end, valid, least))
        self.length = torch.tensor([len(data) for data in targets], device=device)


@torch.no_grad()
def sample_tokenizations(
    distribution: StringDistribution,
    shape: torch.Size,
    targets: Sequence[bytes],
    lattice: TokenLattice,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One tokenization per row of ``shape`` (answers trailing), drawn from ``distribution`` restricted to the
    tokenizations of that answer's bytes ``targets[b]`` with at most ``max_length`` tokens.

    At each step the proposal keeps only tokens that spell the next bytes and leave the rest reachable within
    the remaining steps (EOS exactly when the string is complete), with probabilities proportional to the
    model's; EOS at ``max_length`` is forced, as in the distribution itself.

    Args:
        uniforms: optional ``[*shape, max_length]`` numbers in (0, 1), one per step of each row, from which the
            tokens are drawn by inversion (e.g. keyed random streams, so a row's draws do not depend on the batch);
            default: torch's generator.

    Returns:
        ``(tokens[*shape, max_length + 1], log_weight[*shape])`` with ``log_weight`` = log p(tokens) - log q(tokens),
        whose exponential has mean p(string) under the proposal.
    """
    shape = torch.Size(shape)
    if shape[-1] != len(targets):
        raise RetroError(f"{len(targets)} target strings for a batch of shape {tuple(shape)}")
    context, extra = distribution.decoder_inputs(shape)
    device, n, max_length = context.device, context.shape[0], distribution.max_length
    tables = _Tables(lattice, targets, device)
    u = None
    if uniforms is not None:
        u = uniforms.expand(shape + (max_length,)).reshape(n, max_length).to(context.dtype).clamp(1e-12, 1.0)
    answer = torch.arange(n, device=device) % len(targets)
    rows = torch.arange(n, device=device)
    position = torch.zeros(n, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    out = torch.full((n, max_length + 1), lattice.eos, dtype=torch.long, device=device)
    log_weight = context.new_zeros(n)
    previous = torch.full((n,), distribution.decoder.bos, dtype=torch.long, device=device)
    state = distribution.decoder.init_state(context, **extra)
    for t in range(max_length):  # at t = max_length EOS is forced: weight 1, nothing to draw
        logits, state = distribution.decoder.step(state, previous)
        if distribution.temperature != 1.0:
            logits = logits / distribution.temperature
        log_probs = logits.log_softmax(-1)
        token = tables.token[answer, position]  # [N, C]
        end = tables.end[answer, position]
        rest = tables.least[answer[:, None], end]  # fewest tokens after this one
        is_eos = token == lattice.eos
        allowed = tables.valid[answer, position] & (is_eos | (rest <= max_length - t - 1))
        candidates = log_probs.gather(-1, token).masked_fill(~allowed, -math.inf)
        log_mass = candidates.logsumexp(-1)
        if u is None:
            choice = torch.distributions.Categorical(
                logits=candidates.masked_fill(done[:, None], 0.0)
            ).sample()
        else:  # inversion: the first candidate whose cumulative mass reaches u (never one of mass 0)
            cumulative = (candidates - log_mass[:, None]).exp().cumsum(-1)
            below = cumulative < u[:, t, None] * cumulative[:, -1:]
            choice = below.sum(-1).clamp(max=candidates.shape[-1] - 1)
        chosen = torch.where(done, lattice.eos, token[rows, choice])
        log_weight = log_weight + torch.where(done, 0.0, log_mass)
        position = torch.where(done, position, end[rows, choice])
        out[:, t] = chosen
        done = done | (chosen == lattice.eos)
        if bool(done.all()):
            break
        previous = chosen
    return out.reshape(shape + (max_length + 1,)), log_weight.reshape(shape)
