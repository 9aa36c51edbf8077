"""The ensemble imitator: a token-level mixture whose log p, estimates, decoding and checkpoint are checked against
hand computations from its members' own teacher-forced passes."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_run import run_cli as run

from retro.errors import RetroError
from retro.inference import AmortizedGuide, estimate, importance, load_trained, save_trained
from retro.inference.decoding import beam_search
from retro.inference.ensemble import combine_trained, ensemble_from_trained
from retro.inference.ensemble_guide import EnsembleGuide
from retro.inference.log_weights import preferred_proposal
from retro.inference.registry import resolve_method
from retro.models import Ensemble, LatentSeq2Seq, Seq2Seq
from retro.text import AlphabetCodec

CODEC = AlphabetCodec("abc")
QUESTIONS = ["ab", "cab", "b"]


def _members(*kinds, latent_dim=1, codec=CODEC, max_length=4):
    """Small members with random weights: ``"seq2seq"``/``"latent"``, ``"+attention"`` for the attention decoder."""
    made = []
    for kind in kinds:
        name, _, decoder = kind.partition("+")
        options = dict(codec=codec, max_length=max_length, hidden_dim=8, decoder=decoder or "gru")
        made.append(
            LatentSeq2Seq(latent_dim=latent_dim, **options) if name == "latent" else Seq2Seq(**options)
        )
    return [m.eval() for m in made]


def _token_probs(member, questions, answers, z=None):
    """p_k(a_t | a_<t, q[, z]) at every position, ``[*z batch, B, T]``, from the member's own teacher-forced pass."""
    tokens = member.encode_answers(answers).tokens
    fn = member.answer_distribution(member.encode(member.encode_questions(questions)), z)
    context, extra = fn.decoder_inputs()
    rows = tokens.expand(fn.batch_shape + tokens.shape[-1:]).reshape(-1, tokens.shape[-1])
    picked = fn.decoder(context, rows, **extra).log_softmax(-1).gather(-1, rows[..., None])
    return picked.squeeze(-1).exp().reshape(fn.batch_shape + tokens.shape[-1:])


def _decisions(member, answers):
    """1 at the positions that are decisions (the answer's tokens and its EOS, but not an EOS forced at
    ``max_length``), ``[B, T]``."""
    lengths = member.encode_answers(answers).lengths
    positions = torch.arange(member.encode_answers(answers).tokens.shape[-1])
    return (positions <= lengths[:, None]) & (positions < member.max_length)


def _mixture_log_prob(probs, decisions):
    """sum_t log((1/K) sum_k p_k[t]) over the decisions."""
    mean = torch.stack(torch.broadcast_tensors(*probs)).mean(0)
    return torch.where(decisions, mean.log(), torch.zeros_like(mean)).sum(-1)


def test_exact_log_prob_is_the_average_of_the_members_token_probabilities(float64):
    members = [m.double() for m in _members("seq2seq", "seq2seq+attention")]
    answers = ["", "abca", "cb"]  # "abca": max_length tokens, its EOS forced
    with torch.no_grad():
        expected = _mixture_log_prob(
            [_token_probs(m, QUESTIONS, answers) for m in members], _decisions(members[0], answers)
        )
    records = estimate("exact", Ensemble(members), QUESTIONS, answers).records
    assert [r.kind for r in records] == ["exact"] * 3
    assert torch.allclose(torch.tensor([r.log_prob for r in records]), expected, rtol=0, atol=1e-10)
    # and the members' own log p is not it: the mixture is over tokens, not over whole strings
    whole = torch.stack(
        [
            torch.tensor([r.log_prob for r in estimate("exact", m, QUESTIONS, answers).records])
            for m in members
        ]
    )
    assert (whole.exp().mean(0).log() - expected).abs().max() > 1e-3


def _quadrature_case():
    """Two members with one scalar latent each, and the ensemble's exact log p of three answers by Gauss-Hermite
    quadrature over (z_0, z_1): ``(members, ensemble, answers, exact [B])``."""
    members = [m.double() for m in _members("latent", "latent+attention", latent_dim=1)]
    answers = ["ab", "c", "bca"]
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)  # weight exp(-z^2 / 2)
    z = torch.tensor(nodes)[:, None, None]  # [G, 1, 1]: one node for every answer
    log_w = torch.tensor(weights / math.sqrt(2 * math.pi)).log()
    with torch.no_grad():
        p0, p1 = (_token_probs(m, QUESTIONS, answers, z) for m in members)  # [G, B, T]
    decisions = _decisions(members[0], answers)
    integrand = _mixture_log_prob([p0[:, None], p1[None, :]], decisions)  # [G, G, B]
    exact = (integrand + log_w[:, None, None] + log_w[None, :, None]).logsumexp(0).logsumexp(0)
    return members, Ensemble(members), answers, exact


def test_importance_sampling_matches_a_two_dimensional_quadrature(float64):
    members, ensemble, answers, exact = _quadrature_case()
    guide = EnsembleGuide([AmortizedGuide(m, hidden_dim=8).double() for m in members])
    for proposal, guide_or_none in (("prior", None), ("guide", guide), ("mixture", guide)):
        records = importance(
            ensemble, QUESTIONS, answers, guide=guide_or_none, proposal=proposal, num_particles=2000, seed=3
        ).records
        for record, value in zip(records, exact.tolist()):
            assert 0 < record.stderr < 0.1
            assert abs(record.log_prob - value) <= 4 * record.stderr, (proposal, record, value)


def _narrowed(guide: AmortizedGuide, loc: float, raw_scale: float) -> AmortizedGuide:
    """The guide, proposing N(loc, softplus(raw_scale)) for every answer: far narrower than the posterior."""
    with torch.no_grad():
        for head in guide.heads.values():
            head.weight.zero_()
            head.bias.copy_(torch.tensor([loc, raw_scale]))
    return guide


def test_an_ensemble_is_estimated_from_the_defensive_mixture_unless_told(float64):
    """An ensemble's guide is the product of its members' guides, narrower than the ensemble's posterior (each
    member's z sways only its share of the mixture): estimators default to half guide, half prior, whose weights
    are bounded (w <= 2 p(a | z)). With member guides narrowed to a point away from the mass, the guide alone is
    confidently wrong (many standard errors off the quadrature), the default stays within 4."""
    members, ensemble, answers, exact = _quadrature_case()
    guide = EnsembleGuide([_narrowed(AmortizedGuide(m, hidden_dim=8).double(), 1.5, -4.0) for m in members])
    by_default = estimate("importance", ensemble, QUESTIONS, answers, guide=guide, num_particles=2000, seed=3)
    assert {r.method for r in by_default.records} == {"importance[mixture]"}
    for record, value in zip(by_default.records, exact.tolist()):
        assert 0 < record.stderr < 0.1 and abs(record.log_prob - value) <= 4 * record.stderr, (record, value)
    alone = importance(
        ensemble, QUESTIONS, answers, guide=guide, proposal="guide", num_particles=2000, seed=3
    )
    misses = [abs(r.log_prob - v) / r.stderr for r, v in zip(alone.records, exact.tolist())]
    assert max(misses) > 10, misses
    assert (
        estimate("importance[guide]", ensemble, QUESTIONS, answers, guide=guide, num_particles=20)
        .records[0]
        .method
        == "importance[guide]"
    )


def test_preferred_proposal_is_the_guides_own_choice_among_those_offered():
    members = _members("latent", "latent")
    one, both = AmortizedGuide(members[0]), EnsembleGuide([AmortizedGuide(m) for m in members])
    assert preferred_proposal(None) == "prior" and preferred_proposal(one) == "guide"
    assert preferred_proposal(both) == "mixture"
    assert preferred_proposal(both, ("guide", "prior")) == "guide"  # e.g. AIS, which has no mixture
    assert resolve_method("importance", True, preferred_proposal(both))[1] == "mixture"
    assert resolve_method("ais", True, preferred_proposal(both))[1] == "guide"


def _greedy(members, question, latent_dim):
    """Greedy decoding over the averaged next-token distribution, one teacher-forced pass per member per step,
    latents at their prior mean (0)."""
    prefix, score = [], 0.0
    codec, max_length = members[0].codec, members[0].max_length
    for t in range(max_length):
        tokens = torch.tensor([prefix + [codec.eos]])
        probs = []
        for m in members:
            z = torch.zeros(1, latent_dim) if isinstance(m, LatentSeq2Seq) else None
            fn = m.answer_distribution(m.encode(m.encode_questions([question])), z)
            context, extra = fn.decoder_inputs()
            probs.append(fn.decoder(context, tokens, **extra)[0, t].softmax(-1))
        mean = torch.stack(torch.broadcast_tensors(*probs)).mean(0)
        token = int(mean.argmax())
        score += float(mean[token].log())
        if token == codec.eos:
            return codec.decode(prefix), score
        prefix.append(token)
    return codec.decode(prefix), score  # EOS forced at max_length


def test_beam_one_is_greedy_decoding_of_the_averaged_distribution(float64):
    members = [m.double() for m in _members("latent", "seq2seq+attention", latent_dim=2, max_length=6)]
    found = beam_search(Ensemble(members), QUESTIONS, beam_size=1)
    with torch.no_grad():
        expected = [_greedy(members, q, 2) for q in QUESTIONS]
    assert [h.answer for h in found] == [answer for answer, _ in expected]
    assert np.allclose([h.score for h in found], [score for _, score in expected], rtol=0, atol=1e-10)


def test_two_equal_members_are_the_member(float64):
    member = _members("seq2seq+attention", max_length=6)[0].double()
    ensemble = Ensemble([member, copy.deepcopy(member)])
    answers = ["abc", "", "ccccc"]
    ours, theirs = (estimate("exact", p, QUESTIONS, answers).records for p in (ensemble, member))
    assert np.allclose([r.log_prob for r in ours], [r.log_prob for r in theirs], rtol=0, atol=1e-10)
    ours, theirs = (beam_search(p, QUESTIONS, beam_size=3) for p in (ensemble, member))
    assert [h.answer for h in ours] == [h.answer for h in theirs]
    assert np.allclose([h.score for h in ours], [h.score for h in theirs], rtol=0, atol=1e-10)


def test_members_must_agree():
    with pytest.raises(RetroError, match="at least 2 members, got 1"):
        Ensemble(_members("seq2seq"))
    with pytest.raises(RetroError, match="member 1 answers in codec .*alphabet.*'ab'"):
        Ensemble(_members("seq2seq") + _members("seq2seq", codec=AlphabetCodec("ab")))
    with pytest.raises(RetroError, match="member 2 has max_length 5, member 0 has 4"):
        Ensemble(_members("seq2seq", "seq2seq") + _members("seq2seq", max_length=5))


def _save_members(tmp_path, codec=CODEC, max_length=4):
    """A latent member with its guide and a seq2seq member, saved as retro train would."""
    latent, plain = _members("latent", "seq2seq+attention", latent_dim=2, codec=codec, max_length=max_length)
    save_trained(tmp_path / "A", latent, AmortizedGuide(latent, hidden_dim=8), {"data": "human:arithmetic"})
    save_trained(tmp_path / "B", plain, None, {"data": "human:arithmetic"})
    return [str(tmp_path / "A"), str(tmp_path / "B")]


def test_combined_checkpoint_round_trip(tmp_path):
    directories = _save_members(tmp_path)
    combine_trained(directories, tmp_path / "ens")
    loaded = load_trained(tmp_path / "ens")
    fresh = ensemble_from_trained([load_trained(d) for d in directories])
    assert isinstance(loaded.imitator, Ensemble) and isinstance(loaded.guide, EnsembleGuide)
    answers = ["ab", "c", ""]
    before, after = (
        importance(t.imitator, QUESTIONS, answers, guide=t.guide, num_particles=20, seed=5).records
        for t in (fresh, loaded)
    )
    assert [r.log_prob for r in before] == [r.log_prob for r in after]
    assert [r.method for r in after] == ["importance[mixture]"] * 3  # an ensemble's default proposal
    config = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert [m["imitator"] for m in config["imitator"]["members"]] == ["latent", "seq2seq"]
    assert str(tmp_path) not in json.dumps(config) and loaded.info["data"] == "human:arithmetic"


def test_cli_ensemble_evaluate_score_and_errors(tmp_path, capsys):
    directories = _save_members(tmp_path, codec=AlphabetCodec("0123456789+-="), max_length=8)
    out = tmp_path / "ens"
    code, printed, _ = run(capsys, ["ensemble", "--models", *directories, "--out", str(out)])
    assert code == 0 and "ensemble of 2 models" in printed
    code, printed, _ = run(
        capsys, f"evaluate --model {out} --data human:arithmetic --n 4 --particles 5 --beam 2"
    )
    result = json.loads(printed)
    assert (
        code == 0
        and result["num_answers"] == 4
        and math.isfinite(result["log_prob_mean"])
        and 0 <= result["wer"] <= 1
    )
    code, printed, _ = run(
        capsys, f"score --model {out} --data human:arithmetic --n 3 --particles 5 --format jsonl"
    )
    assert code == 0 and len(printed.splitlines()) == 3
    code, printed, _ = run(capsys, f"sample --model {out} --questions 1+2 3-1 --num-samples 2 --format jsonl")
    assert code == 0 and len(printed.splitlines()) == 4
    # bad input: one line on stderr, exit status 2
    (tmp_path / "bytes").mkdir()
    save_trained(tmp_path / "bytes", _members("seq2seq", codec=None, max_length=8)[0])
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "config.json").write_text("{}")
    for argv, message in (
        (["--models", directories[0], "--out", str(tmp_path / "x")], "at least 2 models, got 1"),
        (
            ["--models", directories[0], str(tmp_path / "bytes"), "--out", str(tmp_path / "x")],
            "answers in codec",
        ),
        (["--models", *directories, "--out", directories[0]], "is an input of this run"),
        (["--models", *directories, "--out", str(out)], "pass --overwrite"),
        (["--models", *directories, "--out", str(stranger), "--overwrite"], "not a retro run"),
    ):
        code, _, err = run(capsys, ["ensemble", *argv])
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()
    # a member whose imitator is not registered: the checkpoint names it, loading imports nothing
    config = json.loads((out / "config.json").read_text())
    config["imitator"]["members"][1]["imitator"] = "moody"
    (out / "config.json").write_text(json.dumps(config))
    code, _, err = run(capsys, f"score --model {out} --data human:arithmetic --n 1")
    assert code == 2 and "'moody', which is not registered" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "members, message",
    [
        ("abc", "must be a list"),
        ([1, 2], "member 0: its config must be a JSON object"),
        ([{"imitator": "ensemble", "members": []}, {}], "member 0 is an ensemble"),
        ([{"imitator": "lm"}, {}], "on a pretrained base cannot be a member"),
        (None, "at least 2 members, got 0"),
        ([{}] * 65, "at most 64 members, got 65"),
    ],
)
def test_a_hostile_member_list_is_a_one_line_error(tmp_path, members, message):
    directories = _save_members(tmp_path)
    combine_trained(directories, tmp_path / "ens")
    path = tmp_path / "ens" / "config.json"
    config = json.loads(path.read_text())
    if members is None:
        del config["imitator"]["members"]
    else:
        config["imitator"]["members"] = members
    path.write_text(json.dumps(config))
    with pytest.raises(RetroError, match=message) as caught:
        load_trained(tmp_path / "ens")
    assert "\n" not in str(caught.value)
    assert str(caught.value).count(repr(str(tmp_path / "ens"))) == 1  # the checkpoint is named, once


@pytest.mark.parametrize(
    "damage, message",
    [
        ("extra tensor", "unexpected tensor 'members.2.x'"),
        ("guides", "the ensemble guide has 3 member guides for 2 members"),
    ],
)
def test_a_damaged_ensemble_checkpoint_names_itself_in_one_retro_error(tmp_path, damage, message):
    from retro.checkpoint import read_checkpoint, write_checkpoint

    combine_trained(_save_members(tmp_path), tmp_path / "ens")
    tensors, config = read_checkpoint(tmp_path / "ens")
    if damage == "extra tensor":
        tensors["imitator.members.2.x"] = torch.zeros(1)
    else:
        config["guide"]["members"].append(None)
    write_checkpoint(tmp_path / "ens", tensors, config)
    with pytest.raises(RetroError, match=message) as caught:
        load_trained(tmp_path / "ens")
    assert str(caught.value).count(repr(str(tmp_path / "ens"))) == 1
    assert "\n" not in str(caught.value)


def test_loading_an_unknown_tensor_into_an_ensemble_is_a_retro_error():
    ensemble = Ensemble(_members("seq2seq", "seq2seq"))
    state = {**ensemble.trained_state(), "members.2.x": torch.zeros(1)}
    with pytest.raises(RetroError, match="unexpected tensor 'members.2.x' \\(the ensemble has 2 members\\)"):
        ensemble.load_trained_state(state)


@pytest.mark.parametrize("data", [[], {"a": 1}, None])
def test_members_whose_data_is_not_a_name_combine_without_one(tmp_path, data):
    latent, plain = _members("latent", "seq2seq", latent_dim=2)
    save_trained(tmp_path / "A", latent, AmortizedGuide(latent, hidden_dim=8), {"data": data})
    save_trained(tmp_path / "B", plain, None, {"data": data})
    combine_trained([tmp_path / "A", tmp_path / "B"], tmp_path / "ens")
    assert load_trained(tmp_path / "ens").info == {"ensemble_members": 2}


def test_cli_ensemble_refuses_models_inside_the_run_it_replaces(tmp_path, capsys):
    """Replacing --out removes its members: models read from inside it are refused before any work."""
    run_dir = tmp_path / "run"
    saved = _save_members(tmp_path, codec=AlphabetCodec("0123456789+-="), max_length=8)
    (run_dir / "members").mkdir(parents=True)
    members = [str(Path(d).rename(run_dir / "members" / str(k))) for k, d in enumerate(saved)]  # as --members
    combine_trained(members, run_dir)
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    code, _, err = run(capsys, ["ensemble", "--models", *members, "--out", str(run_dir), "--overwrite"])
    assert code == 2 and err.count("\n") == 1 and "is inside --out" in err, err
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
