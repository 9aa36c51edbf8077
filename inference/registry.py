"""The one registry of estimators of log p(answer | question), and their one calling convention.

Every estimator is a function

    fn(program, questions, answers, *, guide=None, num_particles=..., seed=None, answer_ids=None,
       max_rows=DEFAULT_MAX_ROWS, progress=False, **options) -> Estimate

wrapped by :func:`estimator` (which checks the inputs, fixes the seed and the answers' ids, and times the call), and
is registered once with :func:`register`. :func:`estimate` calls any of them by name (``"importance[prior]"``,
``"ais"``, ...); ``retro score``, ``retro compare``, ``retro evaluate``, the demo and the notebooks find estimators
here and nowhere else.

Adding an estimator is one module holding the decorated function and one :func:`register` call, e.g.::

    @estimator
    def my_method(program, questions, answers, *, guide=None, num_particles=100, seed=None, answer_ids=None,
                  max_rows=DEFAULT_MAX_ROWS, progress=False) -> Estimate: ...

    register(Registration("my_method", my_method, kind="estimate", budget="particles", default_budget=100,
                          small_budget=10))
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from retro.checks import check_pairs, check_positive_integer
from retro.errors import RetroError
from retro.inference.adaptive import adaptive_estimate
from retro.inference.certify import MAX_GROUPS, check_delta, with_certified_bounds
from retro.inference.log_weights import DEFAULT_MAX_ROWS, preferred_proposal
from retro.inference.results import Estimate, Kind
from retro.inference.validation import check_guide
from retro.program import StringProgram

__all__ = [
    "Registration",
    "estimator",
    "register",
    "unregister",
    "registrations",
    "method_names",
    "get_registration",
    "resolve_method",
    "estimate",
    "DEFAULT_MAX_ROWS",
]

Budget = Literal["particles", "chains", "none"]


@dataclass(frozen=True)
class Registration:
    """One estimator, as the registry knows it.

    Attributes:
        name: what users type (``retro score --method NAME``); ``NAME[PROPOSAL]`` picks a proposal.
        function: the estimator, following the calling convention (see the module docstring).
        kind: the ``kind`` of its records: ``"exact"``, ``"lower_bound"`` or ``"estimate"``.
        budget: what ``num_particles`` counts: ``"particles"``, ``"chains"`` (AIS) or ``"none"`` (ignored).
        default_budget: ``num_particles`` when none is given.
        small_budget: a small but meaningful ``num_particles`` (tests run every estimator at both).
        proposals: values of its ``proposal`` option (empty: it takes none).
        guide_proposals: the proposals that need a guide.
        needs_guide: needs a guide whatever the proposal (e.g. the ELBO).
        latents: ``"any"``, or ``"summable"`` when it only works where the latents can be summed out exactly
            (enumeration, quadrature).
        options: the names of the further keyword options it accepts (``proposal`` included where it has any).
    """

    name: str
    function: Callable[..., Estimate]
    kind: Kind
    budget: Budget
    default_budget: int
    small_budget: int
    proposals: tuple[str, ...] = ()
    guide_proposals: tuple[str, ...] = ()
    needs_guide: bool = False
    latents: Literal["any", "summable"] = "any"
    options: tuple[str, ...] = ()

    def requires_guide(self, proposal: str | None) -> bool:
        """Whether running with ``proposal`` needs a guide."""
        return self.needs_guide or proposal in self.guide_proposals

    def default_proposal(self, has_guide: bool, preferred: str = "guide") -> str | None:
        """With a guide, ``preferred`` (the guide's own choice, see
        :func:`~retro.inference.log_weights.preferred_proposal`) where it is a proposal, else the guide; without
        one, the prior (``None``: no proposals)."""
        if not self.proposals:
            return None
        for proposal in (preferred, "guide") if has_guide else ():
            if proposal in self.proposals:
                return proposal
        return "prior" if "prior" in self.proposals else self.proposals[0]

    def variants(self, has_guide: bool = True) -> list[str]:
        """Every method name it answers to, ``NAME[PROPOSAL]`` per proposal (those that can run without a guide
        when ``has_guide`` is false)."""
        if self.needs_guide and not has_guide:
            return []
        if not self.proposals:
            return [self.name]
        return [f"{self.name}[{p}]" for p in self.proposals if has_guide or p not in self.guide_proposals]


_REGISTRY: dict[str, Registration] = {}
_METHOD = re.compile(r"^([A-Za-z_][\w-]*)(?:\[(\w+)\])?$")


def register(registration: Registration, *, replace: bool = False) -> Registration:
    """Add an estimator to the registry (``replace=True`` to change an existing one)."""
    if not _METHOD.match(registration.name) or "[" in registration.name:
        raise RetroError(f"estimator name {registration.name!r}: use letters, digits, '_' and '-'")
    if registration.name in _REGISTRY and not replace:
        raise RetroError(f"an estimator named {registration.name!r} is already registered")
    if registration.small_budget < 1 or registration.default_budget < registration.small_budget:
        raise RetroError(f"estimator {registration.name!r}: need 1 <= small_budget <= default_budget")
    _REGISTRY[registration.name] = registration
    return registration


def unregister(name: str) -> None:
    """Remove an estimator from the registry (e.g. one a test added)."""
    _REGISTRY.pop(name, None)


def registrations() -> list[Registration]:
    """Every registered estimator, in registration order."""
    return list(_REGISTRY.values())


def method_names() -> list[str]:
    """The registered estimators' names (the choices of ``retro score --method``)."""
    return list(_REGISTRY)


def get_registration(name: str) -> Registration:
    """The registration called ``name`` (a :class:`RetroError` naming the choices when there is none)."""
    if name not in _REGISTRY:
        raise RetroError(f"unknown method {name!r}; expected one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def resolve_method(method: str, has_guide: bool, preferred: str = "guide") -> tuple[Registration, str | None]:
    """``(registration, proposal)`` for a method name such as ``"importance"`` or ``"ais[guide]"``; the proposal
    defaults to :meth:`Registration.default_proposal` (``preferred``: the guide's choice). Raises
    :class:`RetroError` for an unknown method or proposal, or one that needs a guide when there is none."""
    match = _METHOD.match(method.strip())
    if match is None or match.group(1) not in _REGISTRY:
        choices = [v for r in _REGISTRY.values() for v in [r.name, *r.variants()[1:]] if v]
        raise RetroError(f"unknown method {method!r}; expected one of {', '.join(dict.fromkeys(choices))}")
    registration = _REGISTRY[match.group(1)]
    proposal = match.group(2)
    if proposal is not None and proposal not in registration.proposals:
        expected = ", ".join(registration.proposals) or "none"
        raise RetroError(f"method {registration.name!r} has no proposal {proposal!r} (proposals: {expected})")
    proposal = proposal or registration.default_proposal(has_guide, preferred)
    if registration.requires_guide(proposal) and not has_guide:
        label = f"{registration.name}[{proposal}]" if proposal else registration.name
        raise RetroError(f"method {label!r} needs a trained guide (this model has no trained guide)")
    return registration, proposal


def estimate(
    method: str,
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    guide=None,
    num_particles: int | None = None,
    seed: int | None = None,
    answer_ids: Sequence[int] | torch.Tensor | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
    certify: float | None = None,
    target_stderr: float | None = None,
    pilot_particles: int | None = None,
    **options: Any,
) -> Estimate:
    """Run the registered estimator ``method`` (``"exact"``, ``"elbo"``, ``"importance[prior]"``, ``"ais"``...).

    Args:
        guide: the guide q(z | question, answer), for the methods and proposals that use one.
        num_particles: the budget: particles per answer (AIS: chains); default: the registration's.
        seed: seed of the answers' random streams; ``None`` draws one from torch's global generator.
        answer_ids: each answer's index in the whole input (default ``0..B-1``), which keys its random stream.
        max_rows: at most this many particle x answer rows are evaluated at once (bounds memory).
        progress: show a progress bar.
        certify: ``delta``: also give each answer a lower bound on log p that holds with probability at least
            ``1 - delta`` (``info.certified``, records of kind ``"certified"``; see :mod:`retro.inference.certify`).
        target_stderr: S: choose each answer's budget, up to ``num_particles``, so that its standard error is
            about S (pilot draws pick the budget, fresh draws are reported; see :mod:`retro.inference.adaptive`).
        pilot_particles: the first pilot's budget with ``target_stderr`` (default: the registration's small one).
        options: further options the registration lists (e.g. ``num_steps`` for AIS).

    Returns:
        :class:`~retro.inference.results.Estimate`: ``(records, info)``.
    """
    registration, proposal = resolve_method(method, guide is not None, preferred_proposal(guide))
    unknown = sorted(set(options) - set(registration.options))
    if unknown:
        takes = ", ".join(o for o in registration.options if o != "proposal") or "none"
        raise RetroError(f"method {registration.name!r} has no option {unknown[0]!r} (its options: {takes})")
    if proposal is not None:
        given = options.pop("proposal", None)
        if given is not None and "[" in method and given != proposal:
            raise RetroError(f"method {method!r} and proposal={given!r} disagree")
        options["proposal"] = given or proposal
    if certify is not None:
        check_delta(certify)
    # A defensive mixture allocates its particles deterministically (guide first): only the whole set is unbiased.
    max_groups = 1 if options.get("proposal") == "mixture" else MAX_GROUPS

    def run(some_questions, some_answers, budget, some_seed, some_ids) -> Estimate:
        result = registration.function(
            program,
            some_questions,
            some_answers,
            guide=guide,
            num_particles=budget,
            seed=some_seed,
            answer_ids=some_ids,
            max_rows=max_rows,
            progress=progress,
            **options,
        )
        return result if certify is None else with_certified_bounds(result, certify, max_groups)

    budget = registration.default_budget if num_particles is None else num_particles
    if target_stderr is None:
        return run(questions, answers, budget, seed, answer_ids)
    if registration.budget == "none":
        raise RetroError(f"method {registration.name!r} has no budget to adapt (target_stderr)")
    seed = draw_seed() if seed is None else seed
    ids = torch.arange(len(answers)) if answer_ids is None else torch.as_tensor(answer_ids, dtype=torch.int64)
    start = time.perf_counter()
    records, info = adaptive_estimate(
        run,
        questions,
        answers,
        target_stderr=target_stderr,
        max_particles=budget,
        pilot_particles=min(budget, pilot_particles or registration.small_budget),
        seed=seed,
        answer_ids=ids.cpu(),
    )
    return Estimate(records, dataclasses.replace(info, seconds=time.perf_counter() - start))


def draw_seed() -> int:
    """A seed drawn from torch's global generator (so ``torch.manual_seed`` makes unseeded calls reproducible)."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64))


def estimator(function: Callable[..., Estimate]) -> Callable[..., Estimate]:
    """Give an estimator function the common convention: its inputs checked (lists of strings of equal, non-zero
    length; a positive integer budget and ``max_rows``; a guide whose latent sites are the program's), a seed drawn
    when ``None``, answer ids ``0..B-1`` when ``None``, the call timed (``info.seconds``) and the seed recorded
    (``info.seed``). Each wrong input is a one-line :class:`RetroError`."""
    signature = inspect.signature(function)
    missing = {"guide", "num_particles", "seed", "answer_ids", "max_rows", "progress"} - set(
        signature.parameters
    )
    if missing:
        raise TypeError(f"estimator {function.__name__} lacks the parameters {sorted(missing)}")

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Estimate:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        _check_arguments(function.__name__, arguments)
        if arguments["seed"] is None:
            arguments["seed"] = draw_seed()
        if arguments["answer_ids"] is None:
            arguments["answer_ids"] = torch.arange(len(arguments["answers"]))
        start = time.perf_counter()
        device = arguments["program"].device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(arguments["seed"])
            result = function(*bound.args, **bound.kwargs)
        seconds = time.perf_counter() - start
        return Estimate(
            result.records, dataclasses.replace(result.info, seconds=seconds, seed=arguments["seed"])
        )

    return call


def _check_arguments(who: str, arguments: dict[str, Any]) -> None:
    program, questions, answers = arguments["program"], arguments["questions"], arguments["answers"]
    check_pairs(questions, answers, who)
    check_positive_integer(arguments["num_particles"], f"{who}: num_particles")
    check_positive_integer(arguments["max_rows"], f"{who}: max_rows")
    seed = arguments["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise RetroError(f"{who}: seed must be a non-negative integer or None, got {seed!r}")
    if arguments["answer_ids"] is not None:
        ids = torch.as_tensor(arguments["answer_ids"], dtype=torch.int64).cpu().reshape(-1)
        if len(ids) != len(answers):
            raise RetroError(
                f"{who}: need one answer id per answer, got {len(ids)} for {len(answers)} answers"
            )
        if len(ids) and int(ids.min()) < 0:
            raise RetroError(f"{who}: answer ids must be non-negative, got {int(ids.min())}")
        arguments["answer_ids"] = ids
    check_guide(arguments["guide"], program, questions, answers, who)
