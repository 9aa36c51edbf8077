"""log p(answer string | question) summed over all the string's tokenizations (``target="marginal"``).

A program's ``answer`` site is a distribution over token sequences; with a tokenizer, a string has many of them
and the canonical one (what every other estimator scores, ``target="canonical"``) gives a lower bound. Two
estimators of the marginal:

* :func:`exact_marginal`: every tokenization (:class:`retro.tokenizations.TokenLattice`) as a row of one batched
  teacher-forced pass (with the program's latents summed out exactly, as :func:`retro.inference.exact` does:
  enumeration, or quadrature for one scalar Normal), then a log-sum-exp per answer. For short strings: the number
  of tokenizations grows exponentially with the length.
* :func:`marginal_importance`: the tokenization as one more discrete latent. Each particle draws the program's
  latents from the proposal (guide, prior or mixture, as :func:`retro.inference.importance`), then a tokenization
  from the answer distribution restricted to the string's lattice
  (:func:`retro.tokenizations.sample_tokenizations`); :class:`TokenizationProposal` does the second part by
  intercepting the ``answer`` site, so any program under the Imitator contract works. The canonical tokenization's
  term is computed exactly and only the other tokenizations are sampled. Per answer: the estimate, its
  delta-method standard error, ESS and Pareto k-hat.

Byte-level tokenizers can spell byte sequences that are not valid UTF-8. Those token sequences are no string's
tokenization, so their probability belongs to no string: retro's marginal is p(the model's output spells exactly
this string), and over all strings these sum to 1 minus the mass of invalid UTF-8 (measurable by sampling). retro
does not renormalize (the normalizer would need a sum over all strings); a model that wastes mass on invalid
bytes is charged for it, as it is for mass on any string no human writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
from pyro.distributions import TorchDistribution
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import _PYRO_STACK, get_plates
from torch.distributions import constraints

from retro.distributions import StringDistribution
from retro.errors import RetroError
from retro.inference.exact import exact, exact_estimate, exact_log_prob_in_chunks
from retro.inference.importance import PROPOSALS, guide_fraction_of, importance
from retro.inference.log_weights import DEFAULT_MAX_ROWS, preferred_proposal, sampled_log_weights
from retro.inference.registry import Registration, estimator, register
from retro.inference.results import Estimate
from retro.inference.sites import base_distribution, latent_sites
from retro.inference.streams import KeyedSampling, keyed_uniforms, site_key
from retro.inference.weight_records import estimate_from_log_weights
from retro.program import ANSWER_SITE, StringProgram
from retro.text import AlphabetCodec, ByteCodec, StringBatch, SymbolCodec
from retro.tokenizations import TokenLattice, answer_bytes, sample_tokenizations

__all__ = [
    "exact_marginal",
    "marginal_importance",
    "TokenizationProposal",
    "MAX_TOKENIZATIONS",
    "EXACT_NAME",
    "SAMPLED_NAME",
]

MAX_TOKENIZATIONS = 100_000  # per answer, for exact enumeration
EXACT_NAME, SAMPLED_NAME = "exact-marginal", "marginal"
DEFAULT_PARTICLES = 1000


def _spells_uniquely(codec) -> bool:
    """The built-in fixed codecs spell each string with exactly one token sequence: there the marginal is the
    canonical value, computed by the canonical estimators."""
    return not hasattr(codec, "token_bytes") and isinstance(codec, (ByteCodec, AlphabetCodec, SymbolCodec))


def _as_marginal(result: Estimate, method: str, keep_exact: bool = True) -> Estimate:
    """A canonical estimator's ``result`` (one spelling per string) as the marginal estimator ``method``; with
    ``keep_exact``, records (and an info) of a sampling estimator that were computed exactly keep their method."""
    records = [
        replace(r, target="marginal", method=r.method if keep_exact and r.kind == "exact" else method)
        for r in result.records
    ]
    keep = keep_exact and result.info.method == "exact"
    return Estimate(records, replace(result.info, method=result.info.method if keep else method))


def _lattice(program: StringProgram) -> TokenLattice:
    return TokenLattice(program.codec)


def _strings(program: StringProgram, answers: Sequence[str]) -> list[bytes]:
    return [answer_bytes(program.codec, program.codec.encode(a)) for a in answers]


@estimator
@torch.no_grad()
def exact_marginal(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    guide=None,
    num_particles: int = 1,
    seed: int | None = None,
    answer_ids: Sequence[int] | torch.Tensor | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
    max_tokenizations: int = MAX_TOKENIZATIONS,
) -> Estimate:
    """Exact log p(string) per answer: every tokenization with at most ``max_length`` tokens, scored in batched
    passes of at most ``max_rows`` rows, latents summed out exactly; a record's ``num_particles`` is the number of
    tokenizations. ``guide``, ``num_particles``, ``seed``, ``answer_ids`` and ``progress`` are accepted for the
    common calling convention and not used (nothing is drawn). With a built-in fixed codec (bytes, alphabet,
    symbols: one spelling per string) it is :func:`retro.inference.exact`."""
    if _spells_uniquely(program.codec):
        result = exact(program, questions, answers, max_rows=max_rows, seed=seed, answer_ids=answer_ids)
        return _as_marginal(result, EXACT_NAME, keep_exact=False)
    lattice = _lattice(program)
    sites = latent_sites(program, questions[:1], answers[:1])
    rows, owner = [], []
    for index, (answer, data) in enumerate(zip(answers, _strings(program, answers))):
        count = lattice.count(data, program.max_length)
        if count > max_tokenizations:
            raise RetroError(
                f"answer {index} ({answer[:40]!r}) has {count} tokenizations (more than {max_tokenizations}); "
                "use marginal importance sampling"
            )
        paths = lattice.tokenizations(data, program.max_length)
        rows += paths
        owner += [index] * len(paths)
    width = max((len(path) for path in rows), default=0) + 1
    tokens = torch.full((len(rows), width), lattice.eos, dtype=torch.long)
    for r, path in enumerate(rows):
        tokens[r, : len(path)] = torch.tensor(path, dtype=torch.long)
    device = program.device
    spelled = StringBatch(tokens.to(device), torch.tensor([len(p) for p in rows], device=device))
    owner_index = torch.tensor(owner, dtype=torch.long, device=device)
    counts = torch.bincount(owner_index, minlength=len(answers))
    if rows:
        per_row = exact_log_prob_in_chunks(
            program, program.encode_questions(questions)[owner_index], spelled, sites, max_rows=max_rows
        )
    else:
        per_row = torch.zeros(0, device=device)
    # log-sum-exp per answer: its rows are contiguous, so lay them out as [answers, most tokenizations].
    table = per_row.new_full((len(answers), max(1, int(counts.max()) if len(answers) else 1)), -math.inf)
    first = torch.cumsum(counts, 0) - counts
    table[owner_index, torch.arange(len(rows), device=device) - first[owner_index]] = per_row
    totals = table.logsumexp(-1)
    return exact_estimate(questions, answers, totals.tolist(), counts.tolist(), EXACT_NAME, "marginal")


class _TokenizationWeight(TorchDistribution):
    """The ``answer`` site after a tokenization was drawn: its log density is log p(tokens) - log q(tokens)."""

    arg_constraints: dict = {}
    support = constraints.independent(constraints.nonnegative_integer, 1)

    def __init__(self, tokens: torch.Tensor, log_weight: torch.Tensor):
        self.tokens, self.log_weight = tokens, log_weight
        super().__init__(log_weight.shape, tokens.shape[-1:], validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return _TokenizationWeight(
            self.tokens.expand(batch_shape + self.tokens.shape[-1:]), self.log_weight.expand(batch_shape)
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.log_weight

    def sample(self, sample_shape=torch.Size()):
        return self.tokens.expand(torch.Size(sample_shape) + self.tokens.shape)


def _plate_shape() -> torch.Size:
    """The batch shape the enclosing plates (all of them, outer ones too) give a site."""
    plates = [frame for frame in get_plates() if frame.dim is not None]
    if not plates:
        return torch.Size()
    shape = [1] * max(-frame.dim for frame in plates)
    for frame in plates:
        shape[frame.dim] = frame.size
    return torch.Size(shape)


TOKENIZATION_STREAM = site_key(ANSWER_SITE + "/tokenization")


def _keyed_uniforms(shape: torch.Size, fn: StringDistribution) -> torch.Tensor | None:
    """One uniform per step of each particle x answer from the keyed streams of the enclosing
    :class:`~retro.inference.streams.KeyedSampling` (``None`` outside one: torch's generator is used)."""
    keyed = next((m for m in reversed(_PYRO_STACK) if isinstance(m, KeyedSampling)), None)
    if keyed is None:
        return None
    if tuple(shape) != (len(keyed.particle_ids), len(keyed.answer_ids)):
        raise RetroError(f"keyed tokenizations: batch shape {tuple(shape)} is not particles x answers")
    device = fn.context.device
    return keyed_uniforms(
        keyed.seed, keyed.answer_ids, keyed.particle_ids, TOKENIZATION_STREAM, fn.max_length, device
    )


class TokenizationProposal(Messenger):
    """Replace the observed ``answer`` site by a tokenization of the same string drawn from the answer
    distribution restricted to the string's lattice, and its log density by an unbiased estimate of the string's
    probability (given the latents).

    The observed tokenization ``c`` (the canonical one) is counted exactly and only the others are sampled: with
    ``T ~ q`` the estimate is ``p(c) + 1[T != c] p(T) / q(T)``, whose mean is the sum over all tokenizations. It is
    never below ``p(c)``, and when a trained model puts nearly all of a string's mass on ``c`` its variance is
    nearly zero (plain ``p(T) / q(T)`` would pay for every draw of ``c`` with the full weight's variance).

    Wrap a program's model in it inside the particle plate and the usual importance weights (model over proposal)
    become weights of the joint proposal over latents and tokenization.
    """

    def __init__(self, codec, lattice: TokenLattice | None = None):
        super().__init__()
        self.codec = codec
        self.lattice = lattice if lattice is not None else TokenLattice(codec)

    def _pyro_sample(self, msg) -> None:
        if msg["name"] != ANSWER_SITE or not msg["is_observed"]:
            return
        fn = base_distribution(msg["fn"])
        if not isinstance(fn, StringDistribution):
            raise RetroError(
                f"the marginal over tokenizations needs a StringDistribution at the answer site, got "
                f"{type(fn).__name__}"
            )
        observed = msg["value"]
        batch = StringBatch.from_tokens(observed.reshape(-1, observed.shape[-1]), self.lattice.eos)
        targets = [
            answer_bytes(self.codec, row[:length])
            for row, length in zip(batch.tokens.tolist(), batch.lengths.tolist())
        ]
        shape = torch.broadcast_shapes(fn.batch_shape, observed.shape[:-1], _plate_shape())
        tokens, log_ratio = sample_tokenizations(fn, shape, targets, self.lattice, _keyed_uniforms(shape, fn))
        width = tokens.shape[-1]
        canonical = torch.nn.functional.pad(
            observed[..., :width], (0, width - observed.shape[-1]), value=self.lattice.eos
        )
        is_canonical = (tokens == canonical).all(-1)
        log_canonical = fn.log_prob(observed).expand(shape)
        log_weight = torch.logaddexp(log_canonical, log_ratio.masked_fill(is_canonical, -math.inf))
        msg["fn"] = _TokenizationWeight(tokens, log_weight)
        msg["value"] = tokens


class _ProposingTokenizations:
    """``program`` as :func:`~retro.inference.log_weights.sampled_log_weights` sees it (its encoders and its
    ``model``), with the model drawing tokenizations through :class:`TokenizationProposal`: the log weights are
    then those of the joint proposal (latents from the guide/prior/mixture, then a tokenization, both from the
    keyed streams when a seed is given), ``log p̂(string | z) + log p(z) - log r(z)`` with ``p̂`` the estimate of
    :class:`TokenizationProposal`."""

    def __init__(self, program: StringProgram):
        self.proposal = TokenizationProposal(program.codec)
        self.model = self.proposal(program.model)
        self.encode_questions, self.encode_answers = program.encode_questions, program.encode_answers


@estimator
def marginal_importance(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    guide=None,
    num_particles: int = DEFAULT_PARTICLES,
    seed: int | None = None,
    answer_ids: Sequence[int] | torch.Tensor | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
    proposal: str | None = None,
    mixture_weight: float = 0.5,
) -> Estimate:
    """Importance-sampling estimate of log p(string) per answer over latents and tokenizations together.

    Args:
        num_particles: K joint particles per answer (one tokenization each), vectorized; memory is bounded by
            ``max_rows`` particle x answer rows.
        proposal: for the program's latents: ``"guide"``, ``"prior"`` or ``"mixture"``; default: as
            :func:`~retro.inference.importance.importance` (also for programs without latents: only the
            tokenization is drawn).
            With a built-in fixed codec (one spelling per string) this is :func:`retro.inference.importance`.
        seed, answer_ids, max_rows, progress: see :func:`retro.inference.registry.estimate`.

    Returns:
        :class:`~retro.inference.results.Estimate` with ``info.log_weights`` ``[K, B]``.
    """
    proposal = proposal or preferred_proposal(guide)
    fraction = guide_fraction_of(proposal, mixture_weight)
    method = f"{SAMPLED_NAME}[{proposal}]"
    if _spells_uniquely(program.codec):  # one spelling per string: importance sampling over the latents alone
        result = importance(
            program,
            questions,
            answers,
            guide=guide,
            num_particles=num_particles,
            seed=seed,
            answer_ids=answer_ids,
            max_rows=max_rows,
            progress=progress,
            proposal=proposal,
            mixture_weight=mixture_weight,
        )
        return _as_marginal(result, method)
    log_w = sampled_log_weights(
        _ProposingTokenizations(program),
        questions,
        answers,
        num_particles,
        guide,
        fraction,
        max_rows,
        progress,
        method,
        seed,
        answer_ids,
    )
    return _as_marginal(estimate_from_log_weights(log_w, questions, answers, method, "estimate"), method)


register(
    Registration(
        EXACT_NAME,
        exact_marginal,
        kind="exact",
        budget="none",
        default_budget=1,
        small_budget=1,
        latents="summable",
        options=("max_tokenizations",),
    )
)
register(
    Registration(
        SAMPLED_NAME,
        marginal_importance,
        kind="estimate",
        budget="particles",
        default_budget=DEFAULT_PARTICLES,
        small_budget=10,
        proposals=PROPOSALS,
        guide_proposals=("guide", "mixture"),
        options=("proposal", "mixture_weight"),
    )
)
