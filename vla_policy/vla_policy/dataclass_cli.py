"""Command-line options generated from a dataclass's fields: the dataclass is the one source of
names, types and defaults, and argparse stays the parser.

    @dataclass
    class Config:
        steps: int | None = option(None, 'optimizer steps', exclusive='length')
        augment: bool = option(True, 'turn off image augmentation', flag='--no-augment')

    add_options(parser, Config)                 # --steps N, --no-augment, ...
    Config(**values_from_args(Config, args))

Per field (``option(...)``, all optional): ``help``; ``flag`` (default ``--field-name``; a
``bool`` field that defaults to True needs a ``--no-...`` flag, which stores True and is inverted
on the way back); ``choices``; ``required``; ``cli_default`` (the parser's default when it is not
the field's, e.g. None for "decided later from other options"); ``exclusive`` (fields with the same
key are mutually exclusive); ``metavar``; ``hidden`` (parsed but left out of ``--help``).
``(default X)`` is added to the help unless it names the default already or X is None/False.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

_UNSET: Any = object()


def option(default: Any = dataclasses.MISSING, help: str = '', *, flag: str | None = None,  # noqa: A002
           choices: typing.Sequence[Any] | None = None, required: bool = False, cli_default: Any = _UNSET,
           exclusive: str | None = None, metavar: str | None = None, hidden: bool = False) -> Any:
    """A dataclass field whose command-line spelling is kept in ``metadata['cli']``."""
    cli = {'help': help, 'flag': flag, 'choices': list(choices) if choices is not None else None,
           'required': required, 'cli_default': cli_default, 'exclusive': exclusive, 'metavar': metavar,
           'hidden': hidden}
    return dataclasses.field(default=default, metadata={'cli': cli})


def _scalar_type(annotation: Any) -> type:
    """``int | None`` -> int; ``float`` -> float."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f'cannot make an option of type {annotation}')
        return args[0]
    return annotation


def _spec(field: dataclasses.Field) -> dict[str, Any]:
    return field.metadata.get('cli') or option(field.default).metadata['cli']


def _flag(field: dataclasses.Field) -> str:
    return _spec(field)['flag'] or '--' + field.name.replace('_', '-')


def _dest(field: dataclasses.Field) -> str:
    return _flag(field).lstrip('-').replace('-', '_')


def _inverted(field: dataclasses.Field, kind: type) -> bool:
    return kind is bool and field.default is True


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                names: typing.Iterable[str] | None = None) -> None:
    """Add one option per field of the dataclass ``cls`` (or of the fields ``names``, in that order)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    exclusive: dict[str, Any] = {}
    for name in (names if names is not None else fields):
        field = fields[name]
        spec, kind = _spec(field), _scalar_type(hints[name])
        kwargs: dict[str, Any] = {'dest': _dest(field)}
        default = field.default if spec['cli_default'] is _UNSET else spec['cli_default']
        if kind is bool:
            if _inverted(field, kind) and not _flag(field).startswith('--no-'):
                raise ValueError(f'{cls.__name__}.{name} defaults to True: its flag must be --no-...')
            kwargs['action'] = 'store_true'
            shown = None
        else:
            if kind is not str:
                kwargs['type'] = kind
            if spec['required']:
                kwargs['required'] = True
            else:
                kwargs['default'] = default
            shown = None if spec['required'] else default
            for key in ('choices', 'metavar'):
                if spec[key] is not None:
                    kwargs[key] = spec[key]
        text = spec['help']
        if shown is not None and 'default' not in text:
            text = f'{text} (default {shown})'
        kwargs['help'] = argparse.SUPPRESS if spec['hidden'] else text
        target = parser
        if spec['exclusive']:
            if spec['exclusive'] not in exclusive:
                exclusive[spec['exclusive']] = parser.add_mutually_exclusive_group()
            target = exclusive[spec['exclusive']]
        target.add_argument(_flag(field), **kwargs)


def values_from_args(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The field values of ``cls`` that ``args`` holds (inverted ``--no-...`` flags turned back)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if not hasattr(args, _dest(field)):
            continue
        value = getattr(args, _dest(field))
        values[field.name] = (not value) if _inverted(field, _scalar_type(hints[field.name])) else value
    return values
