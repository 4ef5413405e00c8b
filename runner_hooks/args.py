"""Command-line flags that make a run reproducible: ``--seed``, ``--deterministic``,
``--cas-store``."""

from __future__ import annotations

import argparse
import copy
from collections.abc import Mapping, Sequence
from typing import Any

#: What ``--deterministic`` forces in the orchestrator's extra args.
DETERMINISTIC_TEMPERATURE = 0


class ReproducibilityArgsError(ValueError):
    """``--deterministic`` was given without ``--seed``."""


def add_reproducibility_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--seed``, ``--deterministic`` and ``--cas-store`` to a runner's parser.

    ``--deterministic`` without ``--seed`` becomes an error of ``parser`` (usage
    message, exit 2), like any other bad flag.
    """
    group = parser.add_argument_group("reproducibility (casstore)")
    group.add_argument("--seed", type=int, metavar="INT", help="seed passed to the model")
    group.add_argument(
        "--deterministic",
        action="store_true",
        help="temperature 0 and the --seed passed to the model (requires --seed)",
    )
    group.add_argument(
        "--cas-store",
        metavar="URL",
        help="store that records the run (default: $CAS_STORE, else store.toml)",
    )
    parse_known = parser.parse_known_args

    # argparse has no hook for checks across flags; parse_args goes through
    # parse_known_args, so checking there makes it a parser error.
    def parse_known_args(
        args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = parse_known(args, namespace)
        try:
            _check(parsed)
        except ReproducibilityArgsError as exc:
            parser.error(str(exc))
        return parsed, rest

    setattr(parser, "parse_known_args", parse_known_args)  # noqa: B010 (mypy: method assignment)


def _check(args: argparse.Namespace) -> None:
    if getattr(args, "deterministic", False) and getattr(args, "seed", None) is None:
        raise ReproducibilityArgsError("--deterministic requires --seed")


def apply_determinism(
    args: argparse.Namespace,
    extra_args: Mapping[str, Any] | None,
    *,
    drop_unsupported: bool = False,
) -> dict[str, Any]:
    """The orchestrator's extra args for this run; ``extra_args`` is never modified.

    With ``--seed`` the seed is passed; with ``--deterministic`` the temperature is
    also forced to 0. Every other extra arg is kept as given.

    Some providers reject these: with litellm, ``seed`` on Anthropic models and
    ``temperature=0`` on ``openai/gpt-5`` raise ``UnsupportedParamsError``. With
    ``drop_unsupported=True`` the extra args also carry ``drop_params: True``, which
    litellm's ``completion(**extra_args)`` obeys by dropping what the model does not
    support instead of failing (``litellm.drop_params = True`` does the same for every
    call). The run's manifest records the extra args as requested, ``drop_params``
    included, so a reader sees that a seed may not have reached the model.
    """
    _check(args)
    out = copy.deepcopy(dict(extra_args or {}))
    if getattr(args, "seed", None) is not None:
        out["seed"] = args.seed
    if getattr(args, "deterministic", False):
        out["temperature"] = DETERMINISTIC_TEMPERATURE
    if drop_unsupported and ("seed" in out or "temperature" in out):
        out["drop_params"] = True
    return out
