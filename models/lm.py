"""Language-model imitators: a pretrained causal LM answers, with latent variables on top of it.

* :class:`LanguageModel` (``lm``): no latent; log p is exact (for the canonical tokenization of each answer).
* :class:`PersonaLM` (``lm-persona``): which of K persona texts is answering, with learned mixture weights; exact
  by enumeration; each persona text's key/value cache is computed once and shared by every question.
* :class:`SoftPromptLM` (``lm-soft-prompt``): a continuous latent z mapped to prefix embeddings read after the
  question's prompt; estimate log p with a guide built from its latent site like any other.

Each is built on a base (:func:`retro.lm.load_base`: a local directory, safetensors only, no remote code) and
checkpoints only what it trained, with the base's weights hash: rebuilding it needs the base again
(:meth:`LanguageModel.from_config`). Build your own the same way: subclass :class:`LanguageModel`, compute
``self.prompt_cache(questions)``, sample latents inside ``self.answers_plate``, and observe
``self.answer_distribution(cache, prefix=..., soft=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from retro.distributions import StringDistribution
from retro.errors import RetroError
from retro.lm import (
    DEFAULT_TEMPLATE,
    BaseModelError,
    LMBase,
    LMDecoder,
    PrefixCache,
    PromptCache,
    PromptTemplate,
    TokenizerCodec,
    load_base,
    prepare_model,
)
from retro.models.base import Imitator
from retro.text import ByteCodec, StringBatch

__all__ = ["LanguageModel", "PersonaLM", "SoftPromptLM", "LM_IMITATORS"]


def _special_prefix(tokenizer: Any) -> list[int]:
    """The special tokens the tokenizer puts before a text (BOS, for models that expect it)."""
    plain = list(tokenizer.encode("a", add_special_tokens=False))
    full = list(tokenizer.encode("a", add_special_tokens=True))
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start]
    return []


class LanguageModel(Imitator):
    """A pretrained causal LM as an imitator with no latent variable (exact log p of the canonical tokenization).

    The question enters as a prompt (``template``, with a ``{question}`` slot; its trailing whitespace is scored as
    the start of the answer); the answer is the model's continuation, ended by the tokenizer's EOS (forced at
    ``max_length`` tokens). BOS is put before the prompt when the tokenizer adds one.

    Args:
        base: a model directory or a loaded :class:`retro.lm.LMBase`.
        template: the prompt template.
        max_length: the longest answer in tokens (EOS excluded).
        finetune: what training changes (:data:`retro.lm.FINETUNE_MODES`): ``latent`` (default: the imitator's
            own latent parts only), ``lora`` (LoRA adapters on the frozen base, and the latent parts), ``all``
            (every weight) or ``none``.
        lora_rank, lora_alpha: the LoRA adapters' rank and scale.
        padding_side: how prompts of different lengths are batched (the numbers do not depend on it).
        dropout: the rate of every dropout layer of the model during training steps (default 0: as the other
            imitators, and as adversarial training requires; the base's own rates are not used).

    Example:
        >>> imitator = LanguageModel("path/to/model", template="Q: {question}\\nA: ")  # doctest: +SKIP
        >>> imitator.sample(["What is the capital of France?"], num_samples=2)  # doctest: +SKIP
    """

    name = "lm"
    needs_base = True

    def __init__(
        self,
        base: str | LMBase,
        template: str = DEFAULT_TEMPLATE,
        max_length: int = 64,
        finetune: str = "latent",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        padding_side: str = "left",
        dropout: float = 0.0,
    ):
        if not 0.0 <= dropout < 1.0:
            raise RetroError(f"dropout must be in [0, 1), got {dropout}")
        base = load_base(base)
        self.template = PromptTemplate.of(template)
        codec = TokenizerCodec(base.tokenizer, self.template.separator)
        super().__init__(codec, max_length, question_codec=ByteCodec())
        self.remember_config(
            template=self.template.text,
            finetune=finetune,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            padding_side=padding_side,
            dropout=dropout,
            base_sha256=base.sha256,
        )
        self.finetune = finetune
        self.base_sha256 = base.sha256
        self.tokenizer = base.tokenizer
        model = prepare_model(base.model, finetune, lora_rank, lora_alpha)
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = float(dropout)
        self.decoder = LMDecoder(model, codec.vocab_size, pad_id=codec.eos, padding_side=padding_side)
        self._bos = _special_prefix(base.tokenizer)
        start = base.tokenizer.bos_token_id if base.tokenizer.bos_token_id is not None else codec.eos
        self._start = [int(start)]  # what an empty prompt reads (as lm-evaluation-harness does)
        self._prefix_memo: tuple[Any, PrefixCache] | None = None

    # -- what comes before the answer -----------------------------------------------------------------------------
    def prefix_texts(self) -> list[str] | None:
        """Texts read before every prompt, one per value of a prefix latent (``None``: no prefix)."""
        return None

    def prompt_ids(self, question: str) -> list[int]:
        """The prompt's tokens for ``question`` (BOS first when the model expects it and no prefix comes first)."""
        text = self.template.render(question)
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        back = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if back != text:
            raise RetroError(
                f"the tokenizer cannot represent the prompt {text[:40]!r} exactly (it reads back as {back[:40]!r})"
            )
        if self.prefix_texts() is None:
            ids = self._bos + ids
        return ids or self._start

    def _parameters_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.decoder.parameters())

    def prefix_cache(self) -> PrefixCache | None:
        """The prefix texts' key/value cache: computed once, and again only when the model's weights change."""
        texts = self.prefix_texts()
        if texts is None:
            return None
        tracked = torch.is_grad_enabled() and any(p.requires_grad for p in self.decoder.parameters())
        key = self._parameters_key()
        if not tracked and self._prefix_memo is not None and self._prefix_memo[0] == key:
            return self._prefix_memo[1]
        rows = [self._bos + list(self.tokenizer.encode(text, add_special_tokens=False)) for text in texts]
        cache = self.decoder.prefix_cache([row or self._start for row in rows])
        self._prefix_memo = None if tracked else (key, cache)
        return cache

    def prompt_cache(self, questions: StringBatch) -> PromptCache:
        """The key/value cache of the questions' prompts (after each prefix text), once per distinct prompt."""
        texts = questions.to_strings(self.question_codec)
        distinct: dict[str, int] = {}
        rows = [distinct.setdefault(text, len(distinct)) for text in texts]
        prompts = [self.prompt_ids(text) for text in distinct]
        return self.decoder.prompt_cache(
            prompts, torch.tensor(rows, dtype=torch.long), prefix=self.prefix_cache()
        )

    def answer_distribution(
        self, cache: PromptCache, prefix: torch.Tensor | None = None, soft: torch.Tensor | None = None
    ) -> StringDistribution:
        """The answer's distribution after the prompts in ``cache``.

        Args:
            cache: :meth:`prompt_cache` of the questions.
            prefix: which prefix text each answer reads (a tensor of indices that broadcasts against ``[B]``).
            soft: prefix embeddings read after the prompt, ``[..., B, P * D]`` (``D``: the model's embedding width).
        """
        dtype = cache.last_logits.dtype
        shape = torch.Size([cache.num_questions])
        if prefix is not None:
            shape = torch.broadcast_shapes(shape, prefix.shape)
        if soft is not None:
            shape = torch.broadcast_shapes(shape, soft.shape[:-1])
        index = (prefix if prefix is not None else cache.last_logits.new_zeros(())).to(dtype)
        parts = [index.expand(shape)[..., None]]
        if soft is not None:
            parts.append(soft.to(dtype).expand(shape + soft.shape[-1:]))
        context = torch.cat(parts, -1)
        return StringDistribution(self.decoder, context, self.max_length, self.codec.eos, memory=cache)

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        cache = self.prompt_cache(questions)
        with self.answers_plate(questions):
            return self.observe(self.answer_distribution(cache), answers)

    # -- checkpoints: only what was trained, and the base's hash ------------------------------------------------
    def trained_state(self) -> dict[str, torch.Tensor]:
        """The tensors training changes (what a checkpoint holds): the parameters that require gradients."""
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    def load_trained_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load :meth:`trained_state` tensors; any missing or extra name is an error."""
        expected = set(self.trained_state())
        if set(tensors) != expected:
            missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
            raise RetroError(
                f"trained tensors do not match {self.name!r} (fine-tuning {self.finetune!r}): "
                f"missing {missing[:3]}, unexpected {extra[:3]}"
            )
        self.load_state_dict(tensors, strict=False)

    @classmethod
    def from_config(cls, config: dict[str, Any], base: str | LMBase | None) -> LanguageModel:
        """Rebuild an imitator from :meth:`config` on ``base``, which must have the recorded weights hash."""
        config = {k: v for k, v in config.items() if k not in ("imitator", "codec", "question_codec")}
        recorded = config.pop("base_sha256", None)
        if base is None:
            raise BaseModelError(
                f"a {cls.name!r} imitator is built on a base model: give the base model directory again "
                "(--base DIR, or base=... in Python)"
            )
        base = load_base(base)
        if recorded is not None and base.sha256 != recorded:
            raise BaseModelError(
                f"base model {base.directory!r} is not the one this was trained on (weights sha256 "
                f"{base.sha256[:12]}..., recorded {str(recorded)[:12]}...)"
            )
        return cls(base, **config)


class PersonaLM(LanguageModel):
    """A mixture over ``K`` persona texts read before the prompt, with learned weights (exact by enumeration).

    ``persona ~ Categorical(softmax(w))`` per answer; the model reads persona ``k``'s text, then the question's
    prompt, then answers. Each persona text is computed once (and again only when the weights change), each
    prompt once per persona, never per particle.

    Args:
        base, template, max_length, finetune, lora_rank, lora_alpha, padding_side: as :class:`LanguageModel`.
        personas: the ``K`` persona texts (end one with a newline or space to separate it from the prompt).
    """

    name = "lm-persona"

    def __init__(self, base: str | LMBase, personas: Sequence[str] = (), **options: Any):
        personas = [str(p) for p in personas]
        if not personas or any(not p for p in personas):
            raise RetroError("a persona mixture needs at least one non-empty persona text")
        super().__init__(base, **options)
        self._hyperparameters["personas"] = personas
        self.personas = personas
        self.persona_logits = nn.Parameter(torch.zeros(len(personas)), requires_grad=self.finetune != "none")

    def prefix_texts(self) -> list[str]:
        return self.personas

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        cache = self.prompt_cache(questions)
        with self.answers_plate(questions):
            persona = pyro.sample("persona", dist.Categorical(logits=self.persona_logits))
            return self.observe(self.answer_distribution(cache, prefix=persona), answers)


class SoftPromptLM(LanguageModel):
    """A continuous latent ``z ~ Normal(0, I_d)`` per answer, mapped to ``P`` prefix embeddings after the prompt.

    The map is affine (``P x D`` outputs, ``D`` the model's embedding width); its offset starts at the embeddings
    of ``P`` random tokens and its slope small, so at the start z nudges a prompt of real-looking embeddings.

    Args:
        base, template, max_length, finetune, lora_rank, lora_alpha, padding_side: as :class:`LanguageModel`.
        latent_dim: ``d``, the size of z.
        prompt_length: ``P``, the number of soft-prompt embeddings.
    """

    name = "lm-soft-prompt"

    def __init__(self, base: str | LMBase, latent_dim: int = 4, prompt_length: int = 4, **options: Any):
        if latent_dim < 1 or prompt_length < 1:
            raise RetroError(
                f"latent_dim and prompt_length must be >= 1, got {latent_dim} and {prompt_length}"
            )
        super().__init__(base, **options)
        self._hyperparameters.update(latent_dim=latent_dim, prompt_length=prompt_length)
        self.latent_dim, self.prompt_length = int(latent_dim), int(prompt_length)
        embeddings = self.decoder.model.get_input_embeddings().weight
        width = prompt_length * embeddings.shape[1]
        self.soft_prompt = nn.Linear(latent_dim, width, dtype=embeddings.dtype, device=embeddings.device)
        with torch.no_grad():
            rows = torch.randint(0, self.codec.vocab_size, (prompt_length,))
            self.soft_prompt.bias.copy_(embeddings[rows.to(embeddings.device)].reshape(-1))
            self.soft_prompt.weight.normal_(0.0, float(embeddings.std()) / latent_dim**0.5)
        self.soft_prompt.requires_grad_(self.finetune != "none")

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        cache = self.prompt_cache(questions)
        zeros = cache.last_logits.new_zeros(self.latent_dim)
        with self.answers_plate(questions):
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            return self.observe(
                self.answer_distribution(cache, soft=self.soft_prompt(z.to(zeros.dtype))), answers
            )


LM_IMITATORS: tuple[type[LanguageModel], ...] = (LanguageModel, PersonaLM, SoftPromptLM)
