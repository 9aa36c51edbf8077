"""Combine trained imitators into one :class:`~retro.models.Ensemble` checkpoint (``retro ensemble``).

The checkpoint is self-contained: every member's weights in its one weights file (``imitator.members.{k}.*``, and
``guide.guides.{k}.*`` for the members' guides), its config listing the members' configs; it never names the
directories the members came from. It loads with :func:`~retro.inference.trained.load_trained` like any trained
imitator, so ``retro score``, ``retro evaluate`` and ``retro sample`` take it as they are.

Example:
    >>> import tempfile
    >>> from retro.models import Seq2Seq
    >>> from retro.inference.trained import save_trained, load_trained
    >>> runs = [tempfile.mkdtemp() for _ in range(2)]
    >>> for run in runs:
    ...     save_trained(run, Seq2Seq(hidden_dim=8))
    >>> out = tempfile.mkdtemp()
    >>> combine_trained(runs, out)
    >>> type(load_trained(out).imitator).__name__
    'Ensemble'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from retro.errors import RetroError
from retro.inference.ensemble_guide import EnsembleGuide
from retro.inference.run_directory import check_run_directory
from retro.inference.sites import latent_sites
from retro.inference.trained import TrainedImitator, load_trained, save_trained
from retro.models.ensemble import Ensemble, check_member_count
from retro.safepaths import check_output_directory

__all__ = ["ensemble_from_trained", "combine_trained"]


def _guide(trained: Sequence[TrainedImitator]) -> EnsembleGuide | None:
    """The members' guides under their prefixes; ``None`` when no member has latents, or one with latents has no
    guide (the ensemble's estimators then propose from the prior)."""
    has_latents = [bool(latent_sites(t.imitator)) for t in trained]
    if not any(has_latents) or any(latent and t.guide is None for latent, t in zip(has_latents, trained)):
        return None
    return EnsembleGuide([t.guide if latent else None for latent, t in zip(has_latents, trained)])


def _info(trained: Sequence[TrainedImitator]) -> dict[str, Any]:
    """What the ensemble records: its size, and the data its members were trained on when they agree."""
    data = [t.info.get("data") if isinstance(t.info, dict) else None for t in trained]
    shared = data[0] if isinstance(data[0], str) and all(d == data[0] for d in data) else None
    return {"ensemble_members": len(trained), **({"data": shared} if shared is not None else {})}


def ensemble_from_trained(trained: Sequence[TrainedImitator]) -> TrainedImitator:
    """The ensemble of trained imitators (in memory), with their guides combined (see :class:`EnsembleGuide`)."""
    ensemble = Ensemble([t.imitator for t in trained])
    ensemble.eval()
    return TrainedImitator(ensemble, _guide(trained), _info(trained))


def combine_trained(directories: Sequence[str | os.PathLike], out: str | os.PathLike) -> None:
    """Load the trained imitators in ``directories`` and write their ensemble's checkpoint into ``out``.

    ``out`` may be new, empty, or hold a previous retro checkpoint or run (replaced); anything else there is
    refused, as is an ``out`` that is one of the inputs. The caller holds the lock on ``out`` if it wants one
    (``retro ensemble`` does; :func:`retro.outlock.lock_output`).

    Raises:
        RetroError: fewer than two directories, a directory that is no trained imitator, members whose codecs or
            ``max_length`` differ (naming the first mismatch), or an ``out`` that may not be written.
    """
    directories = [os.fspath(d) for d in directories]
    check_member_count(len(directories), "trained models")
    out = check_output_directory(out, directories, "--out")
    check_run_directory(out, overwrite=True)  # replaces only what retro wrote
    trained = [load_trained(directory) for directory in directories]
    try:
        combined = ensemble_from_trained(trained)
    except RetroError as e:
        raise RetroError(f"{e} (members in order: {', '.join(directories)})") from None
    save_trained(out, combined.imitator, combined.guide, combined.info)
