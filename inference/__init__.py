"""Inference over imitator programs: guides, per-answer estimators (one registry) and training objectives."""

# Importing the estimator modules registers them (exact, elbo, importance, ais, in this order).
from retro.inference.exact import exact

# isort: split
from retro.inference.elbo import elbo

# isort: split
from retro.inference.importance import importance

# isort: split
from retro.inference.ais import ais

# isort: split
from retro.inference.guides import AmortizedGuide
from retro.inference.psis import khat_threshold, pareto_khat
from retro.inference.registry import (
    Registration,
    estimate,
    estimator,
    get_registration,
    method_names,
    register,
    registrations,
    resolve_method,
    unregister,
)
from retro.inference.results import AnswerEstimate, Estimate, EstimateInfo, Summary, summarize
from retro.inference.sites import LatentSite, latent_sites

__all__ = [
    "ais",
    "AmortizedGuide",
    "AnswerEstimate",
    "Estimate",
    "EstimateInfo",
    "LatentSite",
    "Registration",
    "Summary",
    "elbo",
    "estimate",
    "estimator",
    "exact",
    "get_registration",
    "importance",
    "khat_threshold",
    "latent_sites",
    "method_names",
    "pareto_khat",
    "register",
    "registrations",
    "resolve_method",
    "summarize",
    "unregister",
]
