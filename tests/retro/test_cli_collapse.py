"""``retro train`` with the collapse tools: the history reports KL, mutual information and active units."""

from __future__ import annotations

import json
import shlex

from retro.cli import main


def test_free_bits_and_annealing_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    command = (
        f"train --imitator latent --data human:typist --n 300 --out {out} --steps 10 --eval-every 5 "
        "--free-bits 0.5 --kl-anneal cyclical --kl-cycle 4 --hidden-dim 16 --latent-dim 2"
    )
    assert main(shlex.split(command)) == 0
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert all({"kl", "train_kl", "kl_weight", "mutual_information", "active_units"} <= set(r) for r in rows)
    assert 0 <= rows[-1]["active_units"] <= 2
    capsys.readouterr()
    bad = f"train --imitator seq2seq --data human:typist --out {tmp_path / 'x'} --free-bits 1"
    assert main(shlex.split(bad)) == 2
    assert "for retrodiction training of an imitator with latents" in capsys.readouterr().err


def test_iwae_objective_from_the_cli(tmp_path, capsys):
    out = tmp_path / "iwae"
    command = (
        f"train --imitator latent --data human:typist --n 300 --out {out} --steps 6 --eval-every 3 "
        "--objective iwae --train-particles 4 --hidden-dim 16 --latent-dim 2"
    )
    assert main(shlex.split(command)) == 0
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6] and all("iwae" in r for r in rows)
    capsys.readouterr()
    bad = f"train --imitator seq2seq --data human:typist --out {tmp_path / 'x'} --objective iwae"
    assert main(shlex.split(bad)) == 2 and "needs an imitator with latents" in capsys.readouterr().err
