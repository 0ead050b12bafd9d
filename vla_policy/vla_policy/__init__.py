"""The Vision-Language-Action model (VLAPolicy), behavioural-cloning training and offline evaluation.

ROS-free: ``from vla_policy import VLAPolicy, VLAConfig``.

The public names are loaded on first use (PEP 562), so importing the package, or a torch-free
module of it (``vla_policy.config``, ``vla_policy.checkpoint_files``), does not import torch:
``vla_bringup`` reads checkpoints' configs while it builds a scenario.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_LAZY = {
    'VLAConfig': 'vla_policy.config',
    'preset': 'vla_policy.config',
    'VLAPolicy': 'vla_policy.policy',
    # torch-free; vla_policy.policy raises (and re-exports) the same classes
    'IncompatibleCheckpoint': 'vla_policy.checkpoint_files',
    'CheckpointError': 'vla_policy.checkpoint_files',
}

__all__ = ['CheckpointError', 'IncompatibleCheckpoint', 'VLAConfig', 'VLAPolicy', 'preset']

if TYPE_CHECKING:  # for type checkers and IDEs; never run
    from vla_policy.checkpoint_files import CheckpointError, IncompatibleCheckpoint
    from vla_policy.config import VLAConfig, preset
    from vla_policy.policy import VLAPolicy


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
