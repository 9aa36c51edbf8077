"""Inference over imitator programs: guides, per-answer estimators and training objectives."""

from retro.inference.ais import ais
from retro.inference.elbo import elbo
from retro.inference.exact import exact
from retro.inference.guides import AmortizedGuide
from retro.inference.importance import importance
from retro.inference.psis import khat_threshold, pareto_khat
from retro.inference.results import AnswerEstimate, Summary, summarize
from retro.inference.sites import LatentSite, latent_sites

__all__ = [
    "ais",
    "AmortizedGuide",
    "AnswerEstimate",
    "LatentSite",
    "Summary",
    "elbo",
    "exact",
    "importance",
    "khat_threshold",
    "latent_sites",
    "pareto_khat",
    "summarize",
]
