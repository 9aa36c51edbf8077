"""The README's language-model example runs (on a tiny model, at smaller sizes), so it cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="needs the [lm] extra: pip install 'retro-imitators[lm]'")

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_language_model_example_runs(lm_dirs, tmp_path, capsys):
    blocks = [b for b in re.findall(r"```py\n(.*?)```", README.read_text(), flags=re.S) if "load_base" in b]
    assert len(blocks) == 1, "the README's language-model example is missing"
    block = (
        blocks[0].replace("path/to/model", str(lm_dirs["gpt2"])).replace("runs/personas", str(tmp_path / "p"))
    )
    block = block.replace("steps=200", "steps=2")
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert out.count("AnswerEstimate(") == 3 and "kind='exact'" in out
