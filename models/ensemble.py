"""``Ensemble``: a token-level mixture of trained imitators, scored and decoded as one distribution.

Member ``k`` runs its own latent sites under the name prefix ``m{k}/`` (``m0/z``, ``m1/style``), but its answer
site is neither sampled nor observed: its answer distribution is captured, and the ensemble's one ``answer`` site
uses a decoder that averages the members' next-token distributions at every position
(:mod:`retro.mixed_decoder`):

    p(a | q) = E_{z_1..z_K} prod_t (1/K) sum_k p_k(a_t | a_<t, q, z_k).

Without latents this is exact; with latents every estimator applies unchanged (the ensemble's guide, the members'
guides each under its prefix, proposes from the product of the members' posteriors). Beam search decodes the mixed
decoder (latents at the prior mean), at about K times one member's cost.

The members answer in one codec, read questions in one codec and have one ``max_length`` (no member's
distribution is cut short or padded: a mismatch is an error, not a silent minimum).

Example:
    >>> from retro.models import Seq2Seq
    >>> from retro.text import AlphabetCodec
    >>> members = [Seq2Seq(AlphabetCodec("ab"), max_length=4, hidden_dim=8) for _ in range(2)]
    >>> ensemble = Ensemble(members)
    >>> len(ensemble.sample(["ab"], num_samples=3)[0])
    3
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import nn

from retro.distributions import StringDistribution
from retro.errors import RetroError
from retro.mixed_decoder import mixed_string_distribution
from retro.models.base import Imitator
from retro.program import ANSWER_SITE, StringProgram
from retro.text import Codec, StringBatch

__all__ = ["Ensemble", "MemberScope", "member_prefix", "check_member_count", "MIN_MEMBERS", "MAX_MEMBERS"]

MIN_MEMBERS = 2
MAX_MEMBERS = 64
HOW_TO_BUILD = "build one from trained models with retro ensemble --models DIR DIR --out DIR"


def member_prefix(index: int) -> str:
    """The prefix of member ``index``'s site names (``"m0/"``)."""
    return f"m{index}/"


class MemberScope(Messenger):
    """Prefix every sample site name (plates' subsample sites too, so K members' plates do not collide) with
    :func:`member_prefix`; used for a member's model and for its guide alike."""

    def __init__(self, index: int):
        super().__init__()
        self.prefix = member_prefix(index)

    def _pyro_sample(self, msg) -> None:
        msg["name"] = self.prefix + msg["name"]


class _CaptureAnswer(Messenger):
    """Take a member's answer distribution without sampling or recording its ``answer`` site (the site stops here:
    no outer handler, trace included, sees it)."""

    def __init__(self):
        super().__init__()
        self.distribution = None

    def _pyro_sample(self, msg) -> None:
        if msg["name"] != ANSWER_SITE or site_is_subsample(msg):
            return
        fn = msg["fn"]
        self.distribution = fn
        if msg["value"] is None and isinstance(fn, StringDistribution):
            # a cheap stand-in (empty strings) for whatever the member does with its value
            msg["value"] = torch.full(fn.shape(), fn.eos, dtype=torch.long, device=fn.context.device)
        msg["done"] = msg["stop"] = True


def _member_from_config(config: Any, index: int) -> Imitator:
    from retro.models import imitator_from_config, needs_base  # the registry imports this module

    if not isinstance(config, dict):
        raise RetroError(
            f"ensemble member {index}: its config must be a JSON object, got {type(config).__name__}"
        )
    name = config.get("imitator")
    if name == Ensemble.name:
        raise RetroError(f"ensemble member {index} is an ensemble: combine its members directly")
    if needs_base(name):
        raise RetroError(
            f"ensemble member {index}: imitator {name!r} on a pretrained base cannot be a member"
        )
    return imitator_from_config(config)


def _describe(codec: Codec, width: int = 80) -> str:
    """A codec's config as text, cut to ``width`` characters (a symbol codec lists every symbol)."""
    text = str(codec.config())
    return text if len(text) <= width else text[: width - 3] + "..."


def check_member_count(count: int, what: str = "members") -> None:
    """Raise unless an ensemble of ``count`` members (``what``: how they are named) may be built.

    Raises:
        RetroError: fewer than :data:`MIN_MEMBERS` or more than :data:`MAX_MEMBERS`.
    """
    if count < MIN_MEMBERS:
        hint = f": {HOW_TO_BUILD}" if what == "members" else ""
        raise RetroError(f"an ensemble needs at least {MIN_MEMBERS} {what}, got {count}{hint}")
    if count > MAX_MEMBERS:
        raise RetroError(f"an ensemble has at most {MAX_MEMBERS} {what}, got {count}")


def _check_members(members: Sequence[StringProgram]) -> None:
    first = members[0]
    for k, member in enumerate(members):
        if not isinstance(member, StringProgram):
            raise RetroError(f"ensemble member {k} is a {type(member).__name__}, not a string program")
        if member.codec != first.codec:
            raise RetroError(
                f"ensemble member {k} answers in codec {_describe(member.codec)}, member 0 in "
                f"{_describe(first.codec)}: the members must share the answer codec"
            )
        if member.question_codec != first.question_codec:
            raise RetroError(
                f"ensemble member {k} reads questions in codec {_describe(member.question_codec)}, member 0 in "
                f"{_describe(first.question_codec)}: the members must share the question codec"
            )
        if member.max_length != first.max_length:
            raise RetroError(
                f"ensemble member {k} has max_length {member.max_length}, member 0 has {first.max_length}: the "
                "members must share max_length"
            )


class Ensemble(Imitator):
    """Token-level mixture of K >= 2 imitators: at each position, the average of their next-token distributions.

    Args:
        members: the imitators (or their configs, as a checkpoint holds them), with equal answer codecs, question
            codecs and ``max_length``.
        codec, max_length, question_codec: as a checkpoint records them; when given they must be the members'.
    """

    name = "ensemble"

    def __init__(
        self,
        members: Sequence[StringProgram | dict[str, Any]] = (),
        codec: Codec | None = None,
        max_length: int | None = None,
        question_codec: Codec | None = None,
    ):
        if isinstance(members, (str, bytes, dict)) or not isinstance(members, Sequence):
            raise RetroError(f"ensemble members must be a list, got {type(members).__name__}")
        check_member_count(len(members))  # before building any member
        members = [
            m if isinstance(m, StringProgram) else _member_from_config(m, k) for k, m in enumerate(members)
        ]
        _check_members(members)
        first = members[0]
        for what, given, theirs in (
            ("codec", codec, first.codec),
            ("max_length", max_length, first.max_length),
            ("question_codec", question_codec, first.question_codec),
        ):
            if given is not None and given != theirs:
                shown = [_describe(x) if isinstance(x, Codec) else repr(x) for x in (given, theirs)]
                raise RetroError(f"ensemble: its {what} {shown[0]} is not its members' ({shown[1]})")
        super().__init__(first.codec, first.max_length, first.question_codec)
        self.members = nn.ModuleList(members)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "members": [member.config() for member in self.members]}

    def trained_state(self) -> dict[str, torch.Tensor]:
        """Every member's trained tensors, under ``members.{k}.``."""
        return {
            f"members.{k}.{name}": tensor
            for k, member in enumerate(self.members)
            for name, tensor in member.trained_state().items()
        }

    def load_trained_state(self, tensors: dict[str, torch.Tensor]) -> None:
        own = set(tensors)
        for k, member in enumerate(self.members):
            prefix = f"members.{k}."
            part = {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}
            own -= {prefix + name for name in part}
            member.load_trained_state(part)
        if own:
            raise RetroError(
                f"unexpected tensor {sorted(own)[0]!r} (the ensemble has {len(self.members)} members)"
            )

    def member_answers(self, questions: StringBatch, answers: StringBatch | None = None) -> list:
        """Run every member's model under its prefix; their answer distributions, in member order."""
        parts = []
        for k, member in enumerate(self.members):
            capture = _CaptureAnswer()
            with MemberScope(k), capture:
                member.model(questions, answers)
            if capture.distribution is None:
                raise RetroError(f"ensemble member {k} ({type(member).__name__}) has no {ANSWER_SITE!r} site")
            parts.append(capture.distribution)
        return parts

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        parts = self.member_answers(questions, answers)
        with self.answers_plate(questions):
            return self.observe(mixed_string_distribution(parts), answers)
