"""Inference over imitator programs: guides, per-answer estimators (one registry) and training objectives."""

# Importing the estimator modules registers them (exact, elbo, importance, ais, then the marginal over
# tokenizations: exact-marginal and marginal, in this order).
from retro.inference.exact import exact

# isort: split
from retro.inference.elbo import elbo

# isort: split
from retro.inference.importance import importance

# isort: split
from retro.inference.ais import ais

# isort: split
from retro.inference.marginal import exact_marginal, marginal_importance

# isort: split
from retro.inference.bdmc import bdmc
from retro.inference.compare import compare
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
from retro.inference.train import TrainConfig, train
from retro.inference.trained import TrainedImitator, load_trained, save_trained

__all__ = [
    "ais",
    "AmortizedGuide",
    "AnswerEstimate",
    "Estimate",
    "EstimateInfo",
    "LatentSite",
    "Registration",
    "Summary",
    "TrainConfig",
    "TrainedImitator",
    "bdmc",
    "compare",
    "load_trained",
    "save_trained",
    "train",
    "elbo",
    "estimate",
    "estimator",
    "exact",
    "exact_marginal",
    "get_registration",
    "importance",
    "khat_threshold",
    "latent_sites",
    "marginal_importance",
    "method_names",
    "pareto_khat",
    "register",
    "registrations",
    "resolve_method",
    "summarize",
    "unregister",
]
