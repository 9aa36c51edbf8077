"""A pretrained causal language model as a decoder of :class:`retro.distributions.StringDistribution`.

The model reads, in order: an optional prefix shared by many questions (a persona text: :class:`PrefixCache`,
computed once), the question's prompt (:class:`PromptCache`, computed once per batch of questions and shared by
every particle), an optional soft prompt (prefix embeddings that depend on a latent, carried by the context), and
then the answer's tokens. The decoder's context row is ``[prefix index, soft prompt (P x D, flattened)]``: column 0
picks the prefix (0 when there is none), the rest (possibly empty) are ``P`` input embeddings placed after the
prompt. Teacher forcing runs the answer in one pass over the cached prompt; ancestral decoding extends a copy of the
cache one token at a time.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from retro.errors import RetroError
from retro.lm.cache import PrefixCache, PromptCache, pad_ids

__all__ = ["LMDecoder"]

LOGITS_BUDGET = 1 << 26
"""Teacher forcing computes the logits of at most about this many (row, position, token) entries at once."""
LENGTH_TOLERANCE = 0.15
"""Prompts run together when the shortest is at least this much shorter than the longest of the group."""


def _length_groups(lengths: list[int]) -> list[list[int]]:
    """Indices grouped by similar length (longest first): each group wastes under 15% of its width on padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] >= (1 - LENGTH_TOLERANCE) * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class LMDecoder(nn.Module):
    """Any ``AutoModelForCausalLM`` under retro's decoder interface (see :mod:`retro.distributions`).

    Args:
        model: the causal LM.
        vocab_size: the tokenizer's vocabulary size; logits of ids beyond it (an embedding matrix padded for speed)
            are set to -inf, so the distribution is over the tokenizer's tokens only.
        pad_id: the id written into padding (never attended to).
        padding_side: where prompts are padded, ``"left"`` or ``"right"`` (the numbers do not depend on it).
    """

    def __init__(self, model: nn.Module, vocab_size: int, pad_id: int, padding_side: str = "left"):
        super().__init__()
        if padding_side not in ("left", "right"):
            raise RetroError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.model = model
        self.vocab_size = int(vocab_size)
        self.bos = (
            self.vocab_size
        )  # the first step reads the prompt's cached logits; this id is never embedded
        self.pad_id = int(pad_id)
        self.padding_side = padding_side

    # -- pieces of the model ------------------------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return self.model.get_input_embeddings().embedding_dim

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(tokens)

    def _cache(self, keys, values):
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=list(zip(keys, values)), config=self.model.config)

    def _mask_vocabulary(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] == self.vocab_size:
            return logits
        if logits.shape[-1] < self.vocab_size:
            raise RetroError(
                f"the model has {logits.shape[-1]} output logits but its tokenizer {self.vocab_size} tokens"
            )
        return logits[..., : self.vocab_size]

    def _run(self, mask, positions, ids=None, embeds=None, past=None, keep=0):
        cache = self._cache(*past) if past is not None else None
        out = self.model(
            input_ids=ids,
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=keep,
        )
        layers = out.cache.layers
        return out.logits, tuple(layer.keys for layer in layers), tuple(layer.values for layer in layers)

    def _positions(self, mask: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return positions if start is None else positions + start[:, None]

    def _last_logits(self, ids_mask: torch.Tensor, run) -> torch.Tensor:
        """Logits after the last real token of each row, computing the output layer only where needed."""
        lengths = ids_mask.sum(-1)
        if self.padding_side == "left":
            return run(1)[:, -1]
        keep = torch.unique(lengths - 1)
        logits = run(keep)
        return logits[
            torch.arange(logits.shape[0], device=logits.device), torch.searchsorted(keep, lengths - 1)
        ]

    # -- what is computed once -----------------------------------------------------------------------------------
    def prefix_cache(self, rows: list[list[int]]) -> PrefixCache:
        """The key/value states of ``K`` token rows (e.g. persona texts, BOS included), computed once."""
        if not rows or any(not row for row in rows):
            raise RetroError("every prefix must hold at least one token")
        device = self.model.get_input_embeddings().weight.device
        ids, mask = pad_ids(rows, self.pad_id, self.padding_side, device)
        _, keys, values = self._run(mask, self._positions(mask), ids=ids, keep=1)
        return PrefixCache(keys, values, mask, mask.sum(-1))

    def prompt_cache(
        self, prompts: list[list[int]], question_rows: torch.Tensor, prefix: PrefixCache | None = None
    ) -> PromptCache:
        """The key/value states of ``U`` distinct prompts (after each of the ``K`` prefixes, if any).

        Prompts are run in groups of similar length (little padding), then their caches are padded to a common
        width (padding is never attended to) and put back in order.

        Args:
            prompts: ``U`` non-empty token rows.
            question_rows: ``[B]``, the prompt of each question of the batch.
            prefix: computed by :meth:`prefix_cache`; the prompts are read after each of its texts.
        """
        if any(not row for row in prompts):
            raise RetroError("every prompt must hold at least one token")
        device = self.model.get_input_embeddings().weight.device
        k = len(prefix) if prefix is not None else 1
        rows = prompts * k  # row r reads prefix r // U
        width = max(len(row) for row in rows)
        pieces = []
        order = []
        for group in _length_groups([len(row) for row in rows]):
            order.extend(group)
            pieces.append(
                self._prompt_group([rows[i] for i in group], group, len(prompts), width, prefix, device)
            )
        # groups are longest first, so even a single group may hold its rows out of order: always put them back
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        inverse = None if order == sorted(order) else inverse.to(device)

        def joined(parts):
            whole = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
            return whole if inverse is None else whole.index_select(0, inverse)

        layers = len(pieces[0][0])
        return PromptCache(
            tuple(joined([piece[0][i] for piece in pieces]) for i in range(layers)),
            tuple(joined([piece[1][i] for piece in pieces]) for i in range(layers)),
            joined([piece[2] for piece in pieces]),
            joined([piece[3] for piece in pieces]),
            joined([piece[4] for piece in pieces]),
            question_rows.to(device),
            k,
        )

    def _prompt_group(self, rows, indices, num_prompts, width, prefix, device):
        """One group's (keys, values, mask, next position, last logits), its prompt part padded to ``width``."""
        ids, mask = pad_ids(rows, self.pad_id, self.padding_side, device)
        if prefix is None:
            full_mask, positions, past, start, before = mask, self._positions(mask), None, 0, 0
        else:
            which = torch.tensor([i // num_prompts for i in indices], device=device)
            past = (
                tuple(t.index_select(0, which) for t in prefix.keys),
                tuple(t.index_select(0, which) for t in prefix.values),
            )
            full_mask = torch.cat([prefix.mask.index_select(0, which), mask], -1)
            start = prefix.next_position.index_select(0, which)
            positions = self._positions(mask, start)
            before = prefix.mask.shape[1]
        outputs = {}

        def run(keep):
            outputs["logits"], outputs["keys"], outputs["values"] = self._run(
                full_mask, positions, ids=ids, past=past, keep=keep
            )
            return outputs["logits"]

        last = self._mask_vocabulary(self._last_logits(mask, run))
        missing = width - mask.shape[1]

        def widen(t: torch.Tensor, dim: int) -> torch.Tensor:  # pad the prompt part of the sequence axis
            if not missing:
                return t
            shape = list(t.shape)
            shape[dim] = missing
            pad = t.new_zeros(shape)
            if self.padding_side == "right":
                return torch.cat([t, pad], dim)
            head, tail = t.narrow(dim, 0, before), t.narrow(dim, before, t.shape[dim] - before)
            return torch.cat([head, pad, tail], dim)

        keys = tuple(widen(t, 2) for t in outputs["keys"])
        values = tuple(widen(t, 2) for t in outputs["values"])
        return keys, values, widen(full_mask, 1), start + mask.sum(-1), last

    # -- the decoder interface ------------------------------------------------------------------------------------
    def _soft_prompt(self, context: torch.Tensor) -> torch.Tensor | None:
        width = context.shape[-1] - 1
        if width == 0:
            return None
        dim = self.embedding_dim
        if width % dim:
            raise RetroError(
                f"a soft prompt of {width} numbers is not a whole number of {dim}-wide embeddings"
            )
        return context[:, 1:].reshape(context.shape[0], width // dim, dim)

    def _check_memory(self, memory: Any) -> PromptCache:
        if not isinstance(memory, PromptCache):
            raise RetroError(
                "a language-model decoder needs its prompt cache as memory (LMDecoder.prompt_cache)"
            )
        return memory

    def _answer_logits(
        self, context: torch.Tensor, tokens: torch.Tensor, memory: PromptCache, first_row: int = 0
    ):
        """Logits ``[N, T, V]`` at every answer position ``t`` given ``tokens[:, :t]`` (rows ``first_row`` on of
        the flattened batch)."""
        memory = self._check_memory(memory)
        rows = memory.rows(context[:, 0].round().long(), first_row)
        soft = self._soft_prompt(context)
        inputs = tokens[:, :-1]
        p = 0 if soft is None else soft.shape[1]
        first = None if soft is not None else memory.last_logits.index_select(0, rows)[:, None]
        if p + inputs.shape[1] == 0:
            return first
        embeds = self.embed(inputs)
        if soft is not None:
            embeds = torch.cat([soft.to(embeds.dtype), embeds], 1)
        n, width = embeds.shape[:2]
        prompt_mask = memory.mask.index_select(0, rows)
        mask = torch.cat([prompt_mask, prompt_mask.new_ones(n, width)], -1)
        positions = memory.next_position.index_select(0, rows)[:, None] + torch.arange(
            width, device=tokens.device
        )
        past = (
            tuple(t.index_select(0, rows) for t in memory.keys),
            tuple(t.index_select(0, rows) for t in memory.values),
        )
        logits, _, _ = self._run(mask, positions, embeds=embeds, past=past)
        logits = self._mask_vocabulary(logits)
        return torch.cat([first, logits], 1) if soft is None else logits[:, p - 1 :]

    def forward(self, context: torch.Tensor, tokens: torch.Tensor, memory: PromptCache) -> torch.Tensor:
        """Logits ``[N, T, V]``: position ``t`` given the prompt and ``tokens[:, :t]``."""
        return self._answer_logits(context, tokens, memory)

    def token_log_probs(
        self, context: torch.Tensor, tokens: torch.Tensor, memory: PromptCache
    ) -> torch.Tensor:
        """``log p(tokens[:, t] | prompt, tokens[:, :t])`` as ``[N, T]``, in one pass."""
        rows = max(1, LOGITS_BUDGET // max(1, tokens.shape[1] * self.vocab_size))
        out = []
        for start in range(0, tokens.shape[0], rows):  # bounded memory: the logits of a few rows at a time
            part = slice(start, start + rows)
            logits = self._answer_logits(context[part], tokens[part], memory, first_row=start)
            out.append(logits.gather(-1, tokens[part, :, None]).squeeze(-1) - logits.logsumexp(-1))
        return torch.cat(out, 0) if len(out) > 1 else out[0]

    def init_state(self, context: torch.Tensor, memory: PromptCache):
        memory = self._check_memory(memory)
        rows = memory.rows(context[:, 0].round().long())
        keys = tuple(t.index_select(0, rows) for t in memory.keys)
        values = tuple(t.index_select(0, rows) for t in memory.values)
        mask = memory.mask.index_select(0, rows)
        position = memory.next_position.index_select(0, rows)
        soft = self._soft_prompt(context)
        if soft is None:
            return {
                "keys": keys,
                "values": values,
                "mask": mask,
                "position": position,
                "pending": memory.last_logits.index_select(0, rows),
            }
        width = soft.shape[1]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], width)], -1)
        positions = position[:, None] + torch.arange(width, device=position.device)
        logits, keys, values = self._run(mask, positions, embeds=soft, past=(keys, values), keep=1)
        return {
            "keys": keys,
            "values": values,
            "mask": mask,
            "position": position + width,
            "pending": self._mask_vocabulary(logits[:, -1]),
        }

    def step(self, state, previous: torch.Tensor):
        if state["pending"] is not None:  # the first token's logits were computed with the prompt
            return state["pending"], {**state, "pending": None}
        mask = torch.cat([state["mask"], state["mask"].new_ones(previous.shape[0], 1)], -1)
        logits, keys, values = self._run(
            mask,
            state["position"][:, None],
            ids=previous[:, None],
            past=(state["keys"], state["values"]),
            keep=1,
        )
        state = {
            "keys": keys,
            "values": values,
            "mask": mask,
            "position": state["position"] + 1,
            "pending": None,
        }
        return self._mask_vocabulary(logits[:, -1]), state

    def reorder_state(self, state, index: torch.Tensor):
        """Rows ``index`` of a decoding state (beam search)."""
        return {
            "keys": tuple(t.index_select(0, index) for t in state["keys"]),
            "values": tuple(t.index_select(0, index) for t in state["values"]),
            "mask": state["mask"].index_select(0, index),
            "position": state["position"].index_select(0, index),
            "pending": None if state["pending"] is None else state["pending"].index_select(0, index),
        }
