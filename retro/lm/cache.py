"""The key/value cache of the text before an answer, computed once and read by every row that shares it.

:class:`PromptCache` plays the part of :class:`retro.distributions.Memory` for a language-model decoder: it is
built once per batch of questions (optionally after a shared prefix, e.g. a persona text, itself computed once), and
row ``n`` of a flattened batch of answers reads the prompt of question ``n % B`` under prefix ``p[n]`` (the prefix
index the decoder's context carries). Nothing before the answer is recomputed per particle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from retro.errors import RetroError

__all__ = ["PromptCache", "PrefixCache", "pad_ids"]


def pad_ids(rows: list[list[int]], pad: int, side: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids[R, L], mask[R, L])`` of token rows padded on ``side`` ("left" or "right"); mask 1 at real tokens."""
    if side not in ("left", "right"):
        raise RetroError(f"padding side must be 'left' or 'right', got {side!r}")
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
            ids[i, span] = torch.tensor(row, dtype=torch.long)
            mask[i, span] = 1
    return ids.to(device), mask.to(device)


@dataclass(frozen=True)
class PrefixCache:
    """Key/value states of ``K`` prefix texts (e.g. personas): ``keys[layer]`` is ``[K, heads, L, head_dim]``."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    mask: torch.Tensor  # [K, L], 1 at real positions
    next_position: torch.Tensor  # [K]: the position id of the first token after the prefix

    def __len__(self) -> int:
        return self.mask.shape[0]


@dataclass(frozen=True)
class PromptCache:
    """Key/value states of ``K x U`` prompts (``K`` prefixes, ``U`` distinct prompts), row ``k * U + u``.

    Attributes:
        keys, values: per layer ``[K * U, heads, L, head_dim]``.
        mask: ``[K * U, L]``, 1 at real positions (padding anywhere).
        next_position: ``[K * U]``, the position id of the first answer token.
        last_logits: ``[K * U, V]``, the logits of the first answer token (read when nothing comes between the
            prompt and the answer).
        question_rows: ``[B]``, the distinct prompt ``u`` of each question of the batch.
        num_prefixes: ``K``.
    """

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    mask: torch.Tensor
    next_position: torch.Tensor
    last_logits: torch.Tensor
    question_rows: torch.Tensor
    num_prefixes: int = 1

    @property
    def num_questions(self) -> int:
        return self.question_rows.shape[0]

    @property
    def num_prompts(self) -> int:
        """``U``, the distinct prompts."""
        return self.mask.shape[0] // self.num_prefixes

    def flat(self, shape: torch.Size) -> PromptCache:
        """The :class:`~retro.distributions.Memory` protocol: the batch ``shape`` must end with the questions."""
        shape = torch.Size(shape)
        if self.num_questions != 1 and (not shape or shape[-1] != self.num_questions):
            raise RetroError(
                f"a prompt cache of {self.num_questions} questions does not serve strings of batch shape "
                f"{tuple(shape)} (the questions must be the last batch dimension)"
            )
        return self

    def rows(self, prefixes: torch.Tensor, first_row: int = 0) -> torch.Tensor:
        """The cache row of each flattened row ``n`` (from ``first_row`` on) with prefix ``prefixes[n]``:
        ``k * U + u(n % B)``."""
        n = prefixes.shape[0]
        questions = torch.arange(first_row, first_row + n, device=prefixes.device) % self.num_questions
        return prefixes * self.num_prompts + self.question_rows[questions]
