"""Your own imitator end to end: defined in your module, trained, saved, loaded and scored from the command line
with ``--import``; a checkpoint never imports code, so an unregistered imitator is a one-line error."""

from __future__ import annotations

import doctest
import json
import textwrap

import pytest
from cli_run import run_cli as run

import retro.models.base
from retro.models import IMITATORS, register_imitator
from retro.models.seq2seq import Seq2Seq

USER_MODULE = textwrap.dedent(
    '''
    """A user's imitator: a discrete mood (3 values) per answer, the question encoded by a GRU."""
    import pyro
    import pyro.distributions as dist
    import torch

    from retro.distributions import StringDistribution
    from retro.models import Imitator, register_imitator
    from retro.nets import GRUDecoder, StringEncoder


    @register_imitator
    class Moody(Imitator):
        name = "moody"

        def __init__(self, codec=None, max_length=16, hidden_dim=16, moods=3, question_codec=None):
            super().__init__(codec, max_length, question_codec)
            self.remember_config(hidden_dim=hidden_dim, moods=moods)
            self.moods = moods
            self.encoder = StringEncoder(self.question_codec.vocab_size, hidden_dim // 2)
            self.mood_embedding = torch.nn.Embedding(moods, 4)
            self.decoder = GRUDecoder(self.codec.vocab_size, hidden_dim + 4, hidden_dim)

        def model(self, questions, answers=None):
            code = self.encoder(questions)  # [B, H]
            with self.answers_plate(questions):
                mood = pyro.sample("mood", dist.Categorical(logits=code.new_zeros(self.moods)))
                feeling = self.mood_embedding(mood)  # [..., B, 4]
                shape = torch.broadcast_shapes(code.shape[:-1], feeling.shape[:-1])
                context = torch.cat([code.expand(shape + code.shape[-1:]), feeling.expand(shape + (4,))], -1)
                answer = StringDistribution(self.decoder, context, self.max_length, self.codec.eos)
                return self.observe(answer, answers)
    '''
)


@pytest.fixture
def user_module(tmp_path):
    path = tmp_path / "my_imitators.py"
    path.write_text(USER_MODULE)
    yield path
    IMITATORS.pop("moody", None)  # the registry is process-wide: leave it as found


def test_a_custom_imitator_trains_saves_loads_and_is_scored_with_import(user_module, tmp_path, capsys):
    out = tmp_path / "moody"
    code, _, err = run(
        capsys,
        f"train --import {user_module} --imitator moody --data human:arithmetic --n 120 --out {out} --steps 4 "
        "--eval-every 2 --hidden-dim 16",
    )
    assert code == 0, err
    assert "warning: latent 'mood' is unused at step 4 (I(mood; answer) = " in err  # 4 steps teach it nothing
    row = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
    assert set(row["latent_usage"]["mood"]) == {"mutual_information", "kl_to_prior"} and row["unused_latents"]
    IMITATORS.pop("moody")  # a fresh process: nothing registered but the built-ins
    code, _, err = run(capsys, f"score --model {out} --data human:arithmetic --n 4 --method exact")
    assert code == 2 and err.count("\n") == 1
    assert "holds imitator 'moody', which is not registered: register its class with" in err
    assert "--import MODULE" in err
    code, stdout, err = run(
        capsys,
        f"score --import {user_module} --model {out} --data human:arithmetic --n 4 --method exact --format jsonl",
    )
    assert code == 0, err
    records = [json.loads(line) for line in stdout.splitlines()]
    assert len(records) == 4 and all(r["kind"] == "exact" and r["log_prob"] < 0 for r in records)


def test_unknown_imitator_and_bad_import_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, f"train --imitator moody --data human:arithmetic --out {tmp_path / 'x'}")
    assert (
        code == 2 and err.count("\n") == 1 and "unknown imitator 'moody'" in err and "--import MODULE" in err
    )
    code, _, err = run(capsys, f"imitators --import {tmp_path / 'missing.py'}")
    assert (
        code == 2
        and err.strip() == f"retro imitators: error: --import {tmp_path / 'missing.py'}: no such file"
    )


def test_register_imitator_guards_names():
    class Impostor(Seq2Seq):
        name = "latent"

    with pytest.raises(Exception, match="imitator name 'latent' is taken by a built-in imitator"):
        register_imitator(Impostor)
    assert register_imitator(IMITATORS["latent"]) is IMITATORS["latent"]  # the same class again: harmless


def test_the_contract_docstring_example_saves_and_loads():
    try:
        failures, attempted = doctest.testmod(retro.models.base, raise_on_error=False)
    finally:
        IMITATORS.pop("verbose-example", None)
    assert failures == 0 and attempted >= 10


def test_an_installed_package_offers_imitators_only_when_asked(tmp_path, monkeypatch, capsys):
    # A package installed on the path: its module and its metadata with an entry point in retro.imitators.
    (tmp_path / "mood_plugin.py").write_text(USER_MODULE.replace("@register_imitator\n", ""))
    info = tmp_path / "mood_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mood-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[retro.imitators]\nmoody = mood_plugin:Moody\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code, out, _ = run(capsys, "imitators")
        assert code == 0 and "moody" not in out  # installing a package runs none of its code
        code, out, _ = run(capsys, "imitators --plugins")
        assert code == 0 and any(line.startswith("moody ") for line in out.splitlines())
    finally:
        IMITATORS.pop("moody", None)
