"""Experiment 2: Sudoku with several solutions. A verifier catches any imitator that does not solve; retrodiction
scores the one that matches the human exactly at -log(number of solutions), computed by model counting.

Questions are 4x4 puzzles (and, for counting, a 9x9 variant with few givens) that have several solutions; the
human answers with a valid solution chosen uniformly among them. Three imitators, all Pyro programs:

* **constraint**: uniform over all valid completions (a :class:`~retro.finite.FiniteProgram` over the enumerated
  solutions): it *is* the human, and its log p of any solution is ``-log(#solutions)``;
* **uniform fill**: fills every blank uniformly with a digit, ignoring the rules (log p ``= -blanks * log n``);
* **neural**: a ``seq2seq`` imitator trained by retrodiction on (puzzle, human solution) pairs.

For each: the accuracy of the *verifier discriminator* ("human" exactly when the answer is a valid solution) on
human vs imitator answers (about 100% against any imitator that does not solve, 50% against the constraint
imitator), the pass rate of its samples, its mean log p of held-out human answers, and the absolute-judgement
report (:func:`~retro.inference.report.imitator_report`: typicality test, neural two-sample test).

Counting: for 9x9 puzzles with few givens, ApproxMC's (epsilon, delta) count gives bounds on the constraint
imitator's log p, checked against exact counts (enumeration is still feasible at these sizes).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from retro.discriminators import VerifierDiscriminator
from retro.distributions import StringDistribution
from retro.errors import RetroError
from retro.experiments.sudoku_grids import (
    approx_count,
    count_solutions,
    is_solution,
    make_puzzles,
    solutions,
)
from retro.finite import FiniteProgram
from retro.inference.exact import exact
from retro.inference.report import imitator_report
from retro.inference.sampling import sample_answers
from retro.inference.train import TrainConfig, train
from retro.inference.two_sample import binomial_summary, discriminator_accuracy
from retro.models import make_imitator
from retro.program import StringProgram
from retro.text import AlphabetCodec, StringBatch
from retro.verifiers import Verifier

__all__ = ["sudoku_codec", "ConstraintImitator", "UniformFillImitator", "run_sudoku", "SudokuRow", "CountRow"]


def sudoku_codec(size: int) -> AlphabetCodec:
    """Digits ``1..size`` and ``.`` (blank), for puzzles and solutions alike."""
    return AlphabetCodec("123456789"[:size] + ".")


class ConstraintImitator(FiniteProgram):
    """Uniform over every solution of the puzzle (enumerated exactly): the human's own answer law."""

    def __init__(self, size: int = 4):
        super().__init__(lambda q: [(s, 0.0) for s in solutions(q)], sudoku_codec(size), size * size)


class _CellwiseDecoder(torch.nn.Module):
    """Decoder whose logits at position ``t`` do not look at earlier tokens: the given digit there, or every
    digit alike for a blank; EOS after the last cell. The context holds each cell's given digit id (-1: blank)."""

    def __init__(self, size: int, codec: AlphabetCodec):
        super().__init__()
        self.cells, self.vocab = size * size, codec.vocab_size
        self.digits = torch.tensor(codec.encode("123456789"[:size]))
        self.eos = self.bos = codec.eos

    def _logits(self, context: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``[N, len(positions), V]``."""
        n = context.shape[0]
        logits = torch.full((n, len(positions), self.vocab), -math.inf, device=context.device)
        for j, t in enumerate(positions.tolist()):
            if t >= self.cells:
                logits[:, j, self.eos] = 0.0
                continue
            given = context[:, t].long()
            blank = given < 0
            logits[blank.nonzero()[:, 0][:, None], j, self.digits.to(context.device)[None, :]] = 0.0
            rows = (~blank).nonzero()[:, 0]
            logits[rows, j, given[rows]] = 0.0
        return logits

    def forward(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self._logits(context, torch.arange(tokens.shape[1]))

    def init_state(self, context: torch.Tensor):
        return (context, 0)

    def step(self, state, previous: torch.Tensor):
        context, t = state
        return self._logits(context, torch.tensor([t]))[:, 0], (context, t + 1)


class UniformFillImitator(StringProgram):
    """Fills each blank with a uniformly random digit, keeping the givens and ignoring the rules."""

    def __init__(self, size: int = 4):
        super().__init__(sudoku_codec(size), size * size)
        self.size = size
        self.decoder = _CellwiseDecoder(size, self.codec)

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        blank = self.codec.encode(".")[0]
        tokens = questions.tokens[..., : self.size * self.size].to(torch.get_default_dtype())
        context = torch.where(tokens == blank, torch.full_like(tokens, -1.0), tokens)
        with self.answers_plate(questions):
            return self.observe(
                StringDistribution(self.decoder, context, self.max_length, self.codec.eos), answers
            )


@dataclass(frozen=True)
class SudokuRow:
    size: int
    imitator: str
    verifier_disc_accuracy: float
    verifier_disc_ci_low: float
    verifier_disc_ci_high: float
    verifier_pass_rate: float
    log_prob_mean: float
    log_prob_stderr: float | None  # None from a single puzzle
    c2st_accuracy: float | None
    typicality_p_value: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CountRow:
    puzzle: str
    givens: int
    exact_count: int
    approx_count: int
    log_prob_exact: float
    log_prob_lower: float
    log_prob_upper: float
    within_bounds: bool
    approx_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _verifier_row(size, name, codec, questions, answers, samples, log_probs, report=None) -> SudokuRow:
    """The verifier discriminator on human answers vs ``samples`` (one imitator answer per question), the pass
    rate of the samples, and the mean of ``log_probs`` (the imitator's log p of each human answer)."""
    verifier = Verifier(is_solution, "sudoku")
    q_batch = StringBatch.from_strings(questions, codec, what="puzzle")
    a_batch = StringBatch.from_strings(answers, codec, size * size, what="solution")
    disc = VerifierDiscriminator(verifier, codec)
    test = binomial_summary(*discriminator_accuracy(disc, (q_batch, a_batch), (q_batch, samples)))
    passed = verifier.check(questions, samples.to_strings(codec))
    values = torch.tensor(log_probs, dtype=torch.float64)
    return SudokuRow(
        size=size,
        imitator=name,
        verifier_disc_accuracy=test.accuracy,
        verifier_disc_ci_low=test.ci_low,
        verifier_disc_ci_high=test.ci_high,
        verifier_pass_rate=sum(passed) / len(passed),
        log_prob_mean=float(values.mean()),
        log_prob_stderr=float(values.std() / math.sqrt(len(values))) if len(values) > 1 else None,
        c2st_accuracy=report.two_sample.accuracy if report is not None else None,
        typicality_p_value=report.typicality.overall_p_value if report is not None else None,
    )


def _human_answers(puzzles: Sequence[str], rng: random.Random) -> list[str]:
    answers = []
    for puzzle in puzzles:
        found = solutions(puzzle)
        answers.append(found[rng.randrange(len(found))])
    return answers


def _train_neural(puzzles, answers, steps: int, seed: int, progress: bool) -> StringProgram:
    torch.manual_seed(seed)
    imitator = make_imitator("seq2seq", codec=sudoku_codec(4), max_length=16, hidden_dim=64)
    config = TrainConfig(
        steps=steps, batch_size=64, learning_rate=3e-3, eval_every=steps, seed=seed, progress=progress
    )
    train(imitator, puzzles, answers, config=config)
    return imitator


def count_rows(
    puzzles: Sequence[str], epsilon: float = 0.8, delta: float = 0.2, seed: int = 1
) -> list[CountRow]:
    """ApproxMC bounds on log p = -log(#solutions) next to exact counts, per puzzle."""
    rows = []
    for puzzle in puzzles:
        exact_count = count_solutions(puzzle)
        start = time.monotonic()
        approx = approx_count(puzzle, epsilon, delta, seed)
        seconds = time.monotonic() - start
        rows.append(
            CountRow(
                puzzle=puzzle,
                givens=sum(ch != "." for ch in puzzle),
                exact_count=exact_count,
                approx_count=approx.count,
                log_prob_exact=-math.log(exact_count),
                log_prob_lower=-approx.log_count_upper,
                log_prob_upper=-approx.log_count_lower,
                within_bounds=approx.log_count_lower <= math.log(exact_count) <= approx.log_count_upper,
                approx_seconds=seconds,
            )
        )
    return rows


def run_sudoku(
    num_puzzles: int = 300,
    num_puzzles_9x9: int = 20,
    train_steps: int = 1500,
    disc_steps: int = 300,
    report_samples: int = 50,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """The whole experiment: ``rows`` (one per imitator and size: 4x4 constraint, uniform fill and neural; 9x9
    constraint and uniform fill) and ``counting_rows`` (ApproxMC vs exact counts on the 9x9 puzzles). The neural imitator trains on ``3 * num_puzzles``
    other puzzles."""
    if num_puzzles < 4:
        raise RetroError(f"sudoku: need at least 4 puzzles, got {num_puzzles}")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    train_puzzles = make_puzzles(4, 3 * num_puzzles, rng)
    test_puzzles = make_puzzles(4, num_puzzles, rng)
    train_answers, test_answers = _human_answers(train_puzzles, rng), _human_answers(test_puzzles, rng)
    imitators = {
        "constraint": ConstraintImitator(4),
        "uniform_fill": UniformFillImitator(4),
        "neural": _train_neural(train_puzzles, train_answers, train_steps, seed, progress),
    }
    rows = []
    for name, program in imitators.items():
        report = imitator_report(
            program,
            test_puzzles,
            test_answers,
            num_samples=report_samples,
            num_particles=1,
            discriminator_steps=disc_steps,
            seed=seed,
        )
        samples = sample_answers(program, program.encode_questions(test_puzzles), 1)[1]
        log_probs = [r.log_prob for r in exact(program, test_puzzles, test_answers).records]
        rows.append(
            _verifier_row(4, name, program.codec, test_puzzles, test_answers, samples, log_probs, report)
        )
    counting = []
    if num_puzzles_9x9 > 0:
        puzzles9 = make_puzzles(9, num_puzzles_9x9, rng)
        answers9 = _human_answers(puzzles9, rng)
        counting = count_rows(puzzles9, seed=seed + 1)
        uniform = UniformFillImitator(9)
        constraint_samples = uniform.encode_answers(_human_answers(puzzles9, rng))  # uniform over solutions
        uniform_samples = sample_answers(uniform, uniform.encode_questions(puzzles9), 1)[1]
        uniform_log_probs = [r.log_prob for r in exact(uniform, puzzles9, answers9).records]
        constraint_log_probs = [c.log_prob_exact for c in counting]
        for name, samples, log_probs in (
            ("constraint", constraint_samples, constraint_log_probs),
            ("uniform_fill", uniform_samples, uniform_log_probs),
        ):
            rows.append(_verifier_row(9, name, uniform.codec, puzzles9, answers9, samples, log_probs))
    return {
        "rows": [r.to_dict() for r in rows],
        "counting_rows": [r.to_dict() for r in counting],
    }
