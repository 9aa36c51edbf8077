"""``retro humans`` and ``retro imitators``: list the built-in programs."""

from __future__ import annotations

from types import SimpleNamespace


def _humans(args) -> int:
    from retro.humans import HUMANS

    for name, cls in sorted(HUMANS.items()):
        print(f"{name:12s} {cls.description}")
    return 0


def _imitators(args) -> int:
    from retro.models import IMITATORS

    for name, cls in sorted(IMITATORS.items()):
        summary = next(iter((cls.__doc__ or "").strip().splitlines()), "")  # your own class may have none
        print(f"{name:12s} {summary}")
    return 0


def _register(name: str, help_text: str, run):
    def register(subparsers) -> None:
        subparsers.add_parser(name, help=help_text, description=help_text).set_defaults(run=run)

    return register


humans_command = SimpleNamespace(register=_register("humans", "list the built-in synthetic humans", _humans))
imitators_command = SimpleNamespace(
    register=_register("imitators", "list the built-in imitators", _imitators)
)
