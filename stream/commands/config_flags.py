"""Flags from the service settings' declarations (``stream.service.config``): one flag per field, by one rule.

A field ``name`` of ``ServiceConfig`` is ``--name-with-dashes``, ``RNNWATCH_NAME`` and the TOML key ``name``; a
field of ``SecurityConfig`` is ``--security-name``, ``RNNWATCH_SECURITY_NAME`` and ``name`` in ``[security]``.
Each flag's help is the field's, with its default and env var; its type and choices come from the annotation.
A service flag's parsed default is None ("not given": the env var, the file or the field's default applies), so
``config_overrides`` hands ``load_config`` only what was typed. Commands that score offline (``score``, ``demo``)
take a setting with its default as a plain value (``add_setting_flag``), under the same name.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from stream.service.config import ENV_PREFIX, SecurityConfig, ServiceConfig

SECURITY = "security"


@dataclass(frozen=True)
class ConfigFlag:
    """One setting as the command line sees it: where it lives, its flag and env var, type, choices and help."""

    section: str | None  # None: a ServiceConfig field; "security": a SecurityConfig field
    name: str
    default: Any
    kind: Any  # the annotation without None
    optional: bool  # None is a valid value
    help: str
    shown: str | None

    @property
    def option(self) -> str:
        return "--" + "-".join(filter(None, (self.section, self.name))).replace("_", "-")

    @property
    def dest(self) -> str:
        return "__".join(filter(None, (self.section, self.name)))

    @property
    def env(self) -> str:
        return ENV_PREFIX + "_".join(filter(None, (self.section, self.name))).upper()

    @property
    def choices(self) -> tuple[Any, ...] | None:
        return get_args(self.kind) if get_origin(self.kind) is Literal else None

    def shown_default(self) -> str:
        """The default as help text says it."""
        if self.shown is not None:
            return self.shown
        if self.default is None:
            return "none"
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)


def _flags_of(cls: type, section: str | None) -> Iterator[ConfigFlag]:
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == SECURITY or not f.metadata.get("flag", True):
            continue
        kind, optional = hints[f.name], False
        if get_origin(kind) in (Union, types.UnionType):
            options = [a for a in get_args(kind) if a is not type(None)]
            kind, optional = options[0], len(options) < len(get_args(kind))
        default = f.default if f.default is not dataclasses.MISSING else None  # a factory: `shown` says it
        yield ConfigFlag(section, f.name, default, kind, optional, f.metadata["help"], f.metadata.get("shown"))


def config_flags() -> list[ConfigFlag]:
    """Every setting that has a flag: the ServiceConfig fields, then the SecurityConfig ones."""
    return [*_flags_of(ServiceConfig, None), *_flags_of(SecurityConfig, SECURITY)]


def flag_for(name: str) -> ConfigFlag:
    """The declaration of one ServiceConfig field (``name``) or security field (``security.name``)."""
    section, _, field_name = name.rpartition(".")
    for flag in config_flags():
        if (flag.section or "") == section and flag.name == field_name:
            return flag
    raise KeyError(name)


def _add(
    parser: Any,
    flag: ConfigFlag,
    default: Any,
    extra_names: tuple[str, ...],
    dest: str,
    service: bool,
    required: bool = False,
) -> None:
    where = f"; {flag.env}" if service else ""
    text = flag.help if required else f"{flag.help} (default: {flag.shown_default()}{where})"
    options: dict[str, Any] = {"dest": dest, "default": default, "help": text.replace("%", "%%")}
    if required:
        options["required"] = True
    if flag.kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif flag.choices is not None:
        options["choices"] = flag.choices
    else:
        options["type"] = flag.kind
        options["metavar"] = {int: "N", float: "X"}.get(flag.kind, flag.name.split("_")[-1].upper())
    parser.add_argument(flag.option, *extra_names, **options)


def add_config_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """``--config`` plus a flag per setting (``names``: only those, e.g. the connection ones), parsed as None
    unless given, so the env var, the TOML file or the field's default applies."""
    parser.add_argument("--config", default=None, metavar="FILE", help="TOML config file (the one serve reads)")
    wanted = None if names is None else set(names)
    group = parser.add_argument_group("settings (flag > RNNWATCH_* env var > --config file > default)")
    for flag in config_flags():
        key = ".".join(filter(None, (flag.section, flag.name)))
        if wanted is None or key in wanted:
            _add(group, flag, None, (), flag.dest, service=True)


CONNECTION = ("bootstrap_servers", *(f"{SECURITY}.{f.name}" for f in _flags_of(SecurityConfig, SECURITY)))


def add_setting_flag(
    parser: Any, name: str, *old_names: str, dest: str | None = None, required: bool = False, help: str | None = None
) -> None:
    """One setting's flag for a command without the config layers (``score``, ``demo``): the field's name, help
    (or ``help``) and default as a plain value; ``old_names`` are earlier spellings still accepted."""
    flag = flag_for(name)
    if help is not None:
        flag = dataclasses.replace(flag, help=help)
    _add(parser, flag, flag.default, old_names, dest or flag.dest, service=False, required=required)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, in ``load_config``'s ``overrides`` shape (security ones in a sub-mapping)."""
    overrides: dict[str, Any] = {}
    security: dict[str, Any] = {}
    for flag in config_flags():
        value = getattr(args, flag.dest, None)
        if value is not None:
            (security if flag.section else overrides)[flag.name] = value
    if security:
        overrides[SECURITY] = security
    return overrides
