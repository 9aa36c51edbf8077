"""The README's Python example runs (at smaller sizes), so the front page cannot rot."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
# Sizes that keep the example meaningful for a reader but are too slow for the test suite.
SMALLER = {
    "draw(3000": "draw(200",
    "draw(100": "draw(10",
    "steps=2000": "steps=5",
    "num_particles=1000": "num_particles=20",
}


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        for big, small in SMALLER.items():
            block = block.replace(big, small)
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    assert "AnswerEstimate(" in capsys.readouterr().out
