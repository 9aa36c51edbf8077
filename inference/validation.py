"""Checks every estimator runs before it computes anything: a wrong input is a one-line error, never a wrong number.

(The checks of strings and budgets live in :mod:`retro.checks`, which ``program.sample`` shares.)

* the pairs: lists of strings (a bare string would be scored character by character), of equal length, not empty;
* the budget: a positive integer;
* the guide: its latent sites match the program's (names, families, supports, shapes), so passing the model
  itself, or a guide built for another program, is refused instead of returning log p 0 or a plausible wrong value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pyro import poutine

from retro.checks import check_pairs, check_positive_integer, check_strings
from retro.errors import RetroError
from retro.inference.sites import LatentSite, describe_site, latent_sites, sample_sites
from retro.program import ANSWER_SITE, StringProgram

__all__ = ["check_strings", "check_pairs", "check_positive_integer", "check_guide"]


def _guide_sites(guide, program: StringProgram, questions, answers) -> dict[str, LatentSite]:
    with torch.no_grad():
        trace = poutine.trace(guide).get_trace(
            program.encode_questions(questions), program.encode_answers(answers)
        )
    sites = {}
    for name, site in sample_sites(trace):
        if name == ANSWER_SITE:
            raise RetroError(
                f"the guide has the answer site {ANSWER_SITE!r}: it is a model, not a guide "
                "(pass a guide such as AmortizedGuide(program))"
            )
        if not site["is_observed"]:
            sites[name] = describe_site(name, site["fn"])
    return sites


def check_guide(
    guide, program: StringProgram, questions: Sequence[str], answers: Sequence[str], who: str
) -> None:
    """The guide's latent sites are the program's: same names, families (supports) and shapes."""
    if guide is None:
        return
    if guide is program:
        raise RetroError(
            f"{who}: the guide is the model itself; pass a guide such as AmortizedGuide(program)"
        )
    expected = latent_sites(program, questions[:1], answers[:1])
    found = _guide_sites(guide, program, questions[:1], answers[:1])
    if set(found) != set(expected):
        raise RetroError(
            f"{who}: the guide's latent sites ({', '.join(sorted(found)) or 'none'}) are not the program's "
            f"({', '.join(sorted(expected)) or 'none'}): a guide built for another program?"
        )
    for name, site in expected.items():
        if found[name] != site:
            raise RetroError(
                f"{who}: guide site {name!r} is {_show(found[name])} but the program's is {_show(site)}: "
                "a guide built for another program?"
            )


def _show(site: LatentSite) -> str:
    categories = f" of {site.num_categories}" if site.family == "categorical" else ""
    return f"{site.family}{categories} with event shape {site.event_shape}"
