"""1-best decoding: the most probable answer per question, by beam search over the answer decoder.

Works on any program that follows the contract and whose ``answer`` site is a
:class:`~retro.distributions.StringDistribution`: the program is traced once per chunk of questions to get the
decoder and its contexts, then the beam search runs over the decoder's ``init_state``/``step`` alone, vectorized over
questions x beams. The search is over plain log p (no length penalty: we want the most probable string), with EOS
forced at ``max_length`` exactly as the distribution does.

Latent variables are handled by decoding at the prior mode, the standard practice (the score is then *not* the
marginal log p, which would need a sum over latents inside the search):

* a continuous latent is fixed at the mean of its prior (``loc`` for a Normal);
* discrete latents are enumerated (every joint value, at most :data:`MAX_ENUMERATED` per question), each value is
  decoded, and the hypothesis maximizing log p(value) + log p(answer | value) wins.

Decoders may define ``reorder_state(state, index)`` (the built-in ones do); otherwise every tensor in their state
must hold the batch in dim 0, and rows are selected there.

Example:
    >>> from retro.humans import make_human
    >>> [h.answer for h in beam_search(make_human("arithmetic"), ["2+3", "7-1"])]
    ['5', '6']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from tqdm import tqdm

from retro.distributions import StringDistribution
from retro.errors import RetroError
from retro.inference.log_weights import DEFAULT_MAX_ROWS
from retro.inference.sites import base_distribution, latent_sites, trace_log_prob
from retro.mixed_decoder import select_state_rows
from retro.program import ANSWER_SITE, PARTICLE_DIM, StringProgram
from retro.text import StringBatch

__all__ = ["Hypothesis", "beam_search", "MAX_ENUMERATED"]

MAX_ENUMERATED = 64  # joint values of the discrete latents decoded per question


class Hypothesis(NamedTuple):
    """The 1-best answer to one question.

    Attributes:
        answer: the decoded string.
        score: log p(answer | question, latents at the prior mode) + log p(discrete latents' values); for a program
            without latents, the exact log p of ``answer``.
    """

    answer: str
    score: float


class _AtPriorMean(Messenger):
    """Fix every unobserved continuous site at the mean of its (plate-broadcast) prior."""

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or site_is_subsample(msg) or msg["fn"].support.is_discrete:
            return
        try:
            mean = msg["fn"].mean
        except NotImplementedError:
            mean = None
        if mean is None or not bool(torch.isfinite(mean).all()):
            raise RetroError(
                f"beam_search: latent {msg['name']!r} has a {type(msg['fn']).__name__} prior without a finite mean"
            )
        msg["value"], msg["is_observed"] = mean, True


def _reorder(decoder: torch.nn.Module, state: Any, index: torch.Tensor, rows: int) -> Any:
    return select_state_rows(decoder, state, index, rows, "beam_search")


def _answer_distribution(program, model, questions: Sequence[str], discrete: list[str]):
    """(answer distribution, its flattened ``[E * B]`` batch shape, log p(discrete values) ``[E, B]``) for a chunk."""
    q_batch = program.encode_questions(questions)
    # Placeholder answers: observing them (rather than sampling) skips a decoding pass; only the fn is used.
    placeholder = program.encode_answers([""] * len(questions))
    trace = poutine.trace(model).get_trace(q_batch, placeholder)
    if ANSWER_SITE not in trace.nodes:
        raise RetroError(
            f"beam_search: {type(program).__name__}.model has no sample site named {ANSWER_SITE!r}"
        )
    fn = base_distribution(trace.nodes[ANSWER_SITE]["fn"])
    if not isinstance(fn, StringDistribution):
        raise RetroError(
            f"beam_search: the answer site of {type(program).__name__} is a {type(fn).__name__}, "
            "not a StringDistribution (beam search needs its decoder)"
        )
    prior = trace_log_prob(trace, set(discrete)) if discrete else None
    prior = fn.context.new_zeros(()) if prior is None else prior
    shape = torch.broadcast_shapes(fn.batch_shape, prior.shape)
    if not shape or shape[-1] != len(questions):
        raise RetroError(
            f"beam_search: the answer distribution of {type(program).__name__} has batch shape "
            f"{tuple(fn.batch_shape)}; expected one row per question ({len(questions)}) in the last dim"
        )
    return fn, shape, prior.expand(shape).reshape(-1, len(questions))


def _search(
    decoder, context: torch.Tensor, extra: dict, max_length: int, eos: int, temperature: float, beam: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search for each context row: (best tokens ``[N, max_length + 1]``, their log p ``[N]``).

    As in fairseq and Hugging Face, a hypothesis ends when EOS ranks among the step's ``beam`` best candidates
    (so ``beam=1`` is greedy decoding), and the beam goes on with the ``beam`` best non-EOS extensions. A row stops
    once its best ended hypothesis scores at least as much as every live one (log p only falls as strings grow).
    """
    n, device = context.shape[0], context.device
    active = torch.arange(n, device=device)  # original row of each row still searched
    state = _reorder(decoder, decoder.init_state(context, **extra), active.repeat_interleave(beam), n)
    history = torch.full((n, beam, max_length + 1), eos, dtype=torch.long, device=device)
    best_tokens = torch.full((n, max_length + 1), eos, dtype=torch.long, device=device)
    scores = best = None  # [rows, beam] and [N] once the first step tells the dtype
    previous = torch.full((n * beam,), decoder.bos, dtype=torch.long, device=device)
    for t in range(max_length + 1):
        m = len(active)
        if t == max_length:  # EOS is forced: every live hypothesis ends here with probability 1
            ends, parent = scores.max(-1)
        else:
            logits, state = decoder.step(state, previous)
            if temperature != 1.0:
                logits = logits / temperature
            vocab = logits.shape[-1]
            if t == 0:  # one hypothesis, the empty prefix, to start from (not `beam` copies of it)
                scores = logits.new_full((n, beam), -math.inf)
                scores[:, 0] = 0.0
                best = logits.new_full((n,), -math.inf)
            candidates = scores[..., None] + logits.log_softmax(-1).view(m, beam, vocab)
            top = candidates.view(m, -1).topk(beam, -1)
            ends, where = torch.where(top.indices % vocab == eos, top.values, -math.inf).max(-1)
            parent = top.indices.gather(1, where[:, None]).squeeze(1) // vocab
        better = ends > best[active]
        if bool(better.any()):
            rows = active[better]
            best[rows] = ends[better]
            best_tokens[rows] = history[better.nonzero().squeeze(1), parent[better]]
        if t == max_length:
            break
        candidates[..., eos] = -math.inf
        top = candidates.view(m, -1).topk(beam, -1)
        scores, parent, token = top.values, top.indices // vocab, top.indices % vocab
        history = history.gather(1, parent[..., None].expand_as(history))
        history[:, :, t] = token
        flat_parent = torch.arange(m, device=device)[:, None] * beam + parent
        live = scores.max(-1).values > best[active]
        if not bool(live.all()):
            if not bool(live.any()):
                break
            scores, history, token, flat_parent = scores[live], history[live], token[live], flat_parent[live]
            active = active[live]
        state = _reorder(decoder, state, flat_parent.reshape(-1), m * beam)
        previous = token.reshape(-1)
    return best_tokens, best


@torch.no_grad()
def beam_search(
    program: StringProgram,
    questions: Sequence[str],
    beam_size: int = 8,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
) -> list[Hypothesis]:
    """The 1-best answer to each question under the program's answer distribution.

    Args:
        program: any program following the contract whose answer site is a ``StringDistribution``.
        questions: the questions (duplicates are decoded again).
        beam_size: hypotheses kept per question (and per value of the discrete latents); 1 is greedy decoding.
        max_rows: bound on the decoder rows (questions x latent values x beam) run at once: bounds memory.
        progress: show a progress bar (questions) on stderr.

    Returns:
        One :class:`Hypothesis` ``(answer, score)`` per question, in order (see the module docstring for what the
        score is when the program has latents).
    """
    if beam_size < 1:
        raise RetroError(f"beam size must be >= 1, got {beam_size}")
    if max_rows < 1:
        raise RetroError(f"max_rows must be >= 1, got {max_rows}")
    questions = list(questions)
    if not questions:
        return []
    sites = latent_sites(program, questions[:1], [""])
    discrete = [s for s in sites.values() if s.discrete]
    for site in discrete:
        if site.event_shape:
            raise RetroError(
                f"beam_search: discrete latent {site.name!r} has event shape {site.event_shape}; "
                "only scalar discrete latents are enumerated"
            )
    values = math.prod(s.support_size for s in discrete)
    if values > MAX_ENUMERATED:
        raise RetroError(
            f"beam_search: the discrete latents {', '.join(s.name for s in discrete)} of {type(program).__name__} "
            f"have {values} joint values; at most {MAX_ENUMERATED} are decoded per question"
        )
    model = _AtPriorMean()(program.model)
    if discrete:
        model = poutine.enum(config_enumerate(model, default="parallel"), first_available_dim=PARTICLE_DIM)
    chunk = max(1, max_rows // (beam_size * values))
    hypotheses: list[Hypothesis] = []
    with tqdm(
        total=len(questions), desc="beam search", unit="question", disable=not progress, leave=False
    ) as bar:
        for start in range(0, len(questions), chunk):
            part = questions[start : start + chunk]
            fn, shape, prior = _answer_distribution(program, model, part, [s.name for s in discrete])
            context, extra = fn.decoder_inputs(shape)
            tokens, log_p = _search(
                fn.decoder, context, extra, fn.max_length, fn.eos, fn.temperature, beam_size
            )
            total = prior + log_p.view(prior.shape).to(prior.dtype)  # [E, B]
            score, value = total.max(0)
            tokens = tokens.view(*prior.shape, -1)[value, torch.arange(len(part), device=value.device)]
            texts = StringBatch.from_tokens(tokens, fn.eos).to_strings(program.codec)
            hypotheses += [Hypothesis(a, float(s)) for a, s in zip(texts, score.tolist())]
            bar.update(len(part))
    return hypotheses
