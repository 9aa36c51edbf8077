"""Beam search: exact argmax on tiny programs (every string enumerated), greedy at beam 1, latents, reorder_state."""

from __future__ import annotations

import itertools

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from programs import CareImitator
from retro.distributions import Memory
from retro.errors import RetroError
from retro.humans import make_human
from retro.inference import exact
from retro.inference.decoding import beam_search
from retro.models import make_imitator
from retro.nets import DECODERS, make_decoder
from retro.program import ANSWER_SITE, StringProgram
from retro.text import AlphabetCodec, StringBatch


def all_strings(codec, max_length):
    rows = [
        list(s) for n in range(max_length + 1) for s in itertools.product(range(codec.num_symbols), repeat=n)
    ]
    tokens = torch.full((len(rows), max_length + 1), codec.eos)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return tokens


@torch.no_grad()
def string_log_probs(program, question, tokens, condition=None, discrete=None):
    """(log p(string | question, latents fixed by ``condition``) for every row of ``tokens``, log p of the fixed
    values of the ``discrete`` sites (default: every fixed site))."""
    model = poutine.condition(program.model, data=condition or {})
    q = program.encode_questions([question])
    trace = poutine.trace(model).get_trace(q, StringBatch.from_tokens(tokens[:1], program.codec.eos))
    prior = sum(
        trace.nodes[name]["fn"].log_prob(trace.nodes[name]["value"]).sum()
        for name in (condition or {} if discrete is None else discrete)
    )
    return trace.nodes[ANSWER_SITE]["fn"].log_prob(tokens[:, None, :])[:, 0], prior


def texts(program, tokens):
    return StringBatch.from_tokens(tokens, program.codec.eos).to_strings(program.codec)


def tiny_seq2seq(decoder, max_length=3):
    return make_imitator(
        "seq2seq", codec=AlphabetCodec("ab"), max_length=max_length, hidden_dim=16, decoder=decoder
    ).double()


@pytest.mark.parametrize("decoder", DECODERS)
def test_large_beam_finds_the_most_probable_string(decoder, float64):
    program = tiny_seq2seq(decoder)
    tokens = all_strings(program.codec, program.max_length)
    names = texts(program, tokens)
    questions = ["ab", "b", ""]
    found = beam_search(program, questions, beam_size=16)
    for question, hypothesis in zip(questions, found):
        log_p, _ = string_log_probs(program, question, tokens)
        assert hypothesis.answer == names[int(log_p.argmax())]
        assert hypothesis.score == pytest.approx(float(log_p.max()), abs=1e-9)


@torch.no_grad()
def greedy(program, question):
    """Reference greedy decoding: the argmax token at each step, EOS forced at max_length."""
    trace = poutine.trace(program.model).get_trace(
        program.encode_questions([question]), program.encode_answers([""])
    )
    fn = trace.nodes[ANSWER_SITE]["fn"]
    context, extra = fn.decoder_inputs()
    state, previous, out, total = (
        fn.decoder.init_state(context, **extra),
        torch.tensor([fn.decoder.bos]),
        [],
        0.0,
    )
    for _ in range(fn.max_length):
        log_p = fn.decoder.step(state, previous)[0].log_softmax(-1)[0]
        state = fn.decoder.step(state, previous)[1]
        token = int(log_p.argmax())
        total += float(log_p[token])
        if token == fn.eos:
            break
        out.append(token)
        previous = torch.tensor([token])
    return program.codec.decode(out), total


@pytest.mark.parametrize("decoder", DECODERS)
def test_beam_one_is_greedy(decoder, float64):
    program = tiny_seq2seq(decoder, max_length=6)
    questions = ["ab", "b", "", "abba"]
    for question, hypothesis in zip(questions, beam_search(program, questions, beam_size=1)):
        answer, score = greedy(program, question)
        assert hypothesis.answer == answer and hypothesis.score == pytest.approx(score, abs=1e-9)


def test_beam_never_worse_than_greedy_and_chunking_changes_nothing(float64):
    program = tiny_seq2seq("gru", max_length=8)
    questions = ["ab", "b", "", "abba", "ba"]
    one, wide = beam_search(program, questions, 1), beam_search(program, questions, 4)
    assert all(w.score >= o.score - 1e-12 for o, w in zip(one, wide))
    assert beam_search(program, questions, 4, max_rows=4) == wide


def test_human_decodes_to_its_intended_answer_which_is_its_most_probable(float64):
    """ "2+3": "5" is the arithmetic human's most probable answer (marginally, by exact log p) and its 1-best."""
    human = make_human("arithmetic")
    candidates = ["5", "2+3=5", "", "6", "55", "4", "5="]
    log_p = [r.log_prob for r in exact(human, ["2+3"] * len(candidates), candidates).records]
    assert max(zip(log_p, candidates))[1] == "5"
    assert [h.answer for h in beam_search(human, ["2+3", "12-19"])] == ["5", "-7"]


@pytest.mark.parametrize("name", ["arithmetic", "mixture"])
def test_discrete_latent_is_decoded_at_its_best_value(name, float64):
    """The 1-best maximizes log p(value) + log p(answer | value) over every value and every string."""
    if name == "arithmetic":
        program, question, site, values = (
            make_human(name, AlphabetCodec("0123456789+-="), 2),
            "1+2",
            "style",
            3,
        )
    else:
        program = make_imitator(name, codec=AlphabetCodec("ab"), max_length=3, hidden_dim=16, num_styles=3)
        program, question, site, values = program.double(), "ab", "style", 3
    tokens = all_strings(program.codec, program.max_length)
    joint = []
    for value in range(values):
        log_p, prior = string_log_probs(program, question, tokens, {site: torch.tensor([value])})
        joint.append(prior + log_p)
    joint = torch.stack(joint)  # [values, strings]
    (hypothesis,) = beam_search(program, [question], beam_size=len(tokens))
    assert hypothesis.answer == texts(program, tokens)[int(joint.max(0).values.argmax())]
    assert hypothesis.score == pytest.approx(float(joint.max()), abs=1e-9)


CONTINUOUS = {  # program, question, its continuous latent at the prior mean, its discrete latents' values
    "latent": (
        lambda: make_imitator("latent", codec=AlphabetCodec("ab"), max_length=3, hidden_dim=16, latent_dim=3),
        "ab",
        {"z": torch.zeros(1, 3)},
        {},
    ),
    "typist": (
        lambda: make_human("typist", AlphabetCodec("abcdefghijklmnopqrstuvwxyz"), 2),
        "go",
        {"sloppiness": torch.zeros(1)},
        {},
    ),
    "care": (
        lambda: CareImitator(AlphabetCodec("ab"), max_length=3),
        "ab",
        {"care": torch.zeros(1)},
        {"mood": 2},
    ),
}


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_continuous_latent_is_fixed_at_its_prior_mean(name, float64):
    make, question, at_mean, discrete = CONTINUOUS[name]
    program = make().double()
    tokens = all_strings(program.codec, program.max_length)
    joint = []
    for values in itertools.product(*(range(n) for n in discrete.values())):
        fixed = {site: torch.tensor([v]) for site, v in zip(discrete, values)}
        log_p, prior = string_log_probs(program, question, tokens, {**at_mean, **fixed}, discrete)
        joint.append(prior + log_p)
    best = torch.stack(joint).max(0).values
    (hypothesis,) = beam_search(program, [question], beam_size=len(tokens))
    assert hypothesis.answer == texts(program, tokens)[int(best.argmax())]
    assert hypothesis.score == pytest.approx(float(best.max()), abs=1e-9)


class _NotAString(StringProgram):
    def model(self, questions, answers=None):
        with self.answers_plate(questions):
            shape = (len(questions), self.max_length + 1)
            return pyro.sample(ANSWER_SITE, dist.Normal(torch.zeros(shape), 1.0).to_event(1), obs=None)


def test_answer_site_must_be_a_string_distribution():
    with pytest.raises(RetroError, match="not a StringDistribution"):
        beam_search(_NotAString(AlphabetCodec("ab"), 3), ["a"])


def test_beam_size_must_be_positive():
    with pytest.raises(RetroError, match="beam size"):
        beam_search(tiny_seq2seq("gru"), ["a"], beam_size=0)


@pytest.mark.parametrize("kind", DECODERS)
@torch.no_grad()
def test_reorder_state_commutes_with_step(kind):
    decoder = make_decoder(kind, vocab_size=5, context_dim=3, hidden_dim=16, memory_dim=6)
    # Three rows over two questions' memories (row n reads memory n % 2), as for particles x questions.
    memory = Memory(torch.randn(2, 4, 6), torch.tensor([[True] * 4, [True, True, False, False]]))
    state = decoder.init_state(torch.randn(3, 3), **({"memory": memory} if kind == "attention" else {}))
    for token in ([decoder.bos] * 3, [0, 1, 2]):
        _, state = decoder.step(state, torch.tensor(token))
    index, previous = torch.tensor([2, 0, 0, 1]), torch.tensor([4, 1, 3])
    logits, stepped = decoder.step(state, previous)
    reordered_logits, reordered = decoder.step(decoder.reorder_state(state, index), previous[index])
    assert torch.allclose(reordered_logits, logits[index], atol=1e-6)
    after = decoder.step(reordered, torch.tensor([1, 2, 3, 4]))[0]
    expected = decoder.step(decoder.reorder_state(stepped, index), torch.tensor([1, 2, 3, 4]))[0]
    assert torch.allclose(after, expected, atol=1e-6)


@torch.no_grad()
def test_attention_beams_share_their_questions_memory():
    # Beam search reorders rows within each question's beam: the attention decoder keeps one memory per question
    # for them, and must give what one memory copy per row gives (a fresh state over repeated memories).
    torch.manual_seed(0)
    decoder = make_decoder("attention", vocab_size=5, context_dim=3, hidden_dim=16, memory_dim=6)
    memory = Memory(torch.randn(2, 4, 6), torch.tensor([[True] * 4, [True, True, False, False]]))
    context, beam = torch.randn(2, 3), 3
    rows = torch.arange(2).repeat_interleave(beam)
    state = decoder.reorder_state(decoder.init_state(context, memory=memory), rows)
    copied = decoder.init_state(context[rows], memory=Memory(memory.states[rows], memory.mask[rows]))
    previous = torch.full((2 * beam,), decoder.bos)
    for parents in (
        torch.tensor([0, 0, 2, 3, 5, 5]),
        torch.tensor([1, 2, 2, 4, 3, 3]),
        torch.tensor([3, 4, 5]),
    ):
        logits, state = decoder.step(state, previous)
        expected, copied = decoder.step(copied, previous)
        assert torch.allclose(logits, expected, atol=1e-6)
        state, copied = decoder.reorder_state(state, parents), decoder.reorder_state(copied, parents)
        previous = torch.arange(len(parents)) % 5
    assert state[3].shape[0] == 1 and torch.allclose(
        decoder.step(state, previous)[0], decoder.step(copied, previous)[0], atol=1e-6
    )
