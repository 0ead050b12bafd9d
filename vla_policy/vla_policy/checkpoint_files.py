"""The files of a checkpoint directory, and finding one, without torch.

A checkpoint is a directory holding ``config.json`` (the :class:`VLAConfig`),
``model.safetensors``, ``metadata.json`` and the tokenizer; a training run directory holds
one in ``checkpoint/``.  The launch side (``vla_bringup.scenarios``: the image size a
checkpoint was trained on) and the loaders (``VLAPolicy.from_pretrained``, ``vla train
--resume``, ``vla evaluate``) find it here, so they agree on what a checkpoint is and none of
them needs to import torch just to look.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
METADATA_FILE = 'metadata.json'
TOKENIZER_DIR = 'tokenizer'


class IncompatibleCheckpoint(ValueError):
    """A checkpoint does not fit the robot or the data it is used with."""


class CheckpointError(FileNotFoundError):
    """A checkpoint directory is missing or unreadable."""


def resolve_checkpoint(directory: str | Path) -> Path:
    """The checkpoint directory itself, or ``<run>/checkpoint`` of a training run directory."""
    directory = Path(directory)
    if (directory / CONFIG_FILE).is_file():
        return directory
    if (directory / 'checkpoint' / CONFIG_FILE).is_file():
        return directory / 'checkpoint'
    if (directory / 'seeds.json').is_file():
        runs = sorted(p.name for p in directory.glob('seed_*') if p.is_dir())
        raise CheckpointError(f'{directory} holds {len(runs)} models trained with --seeds ({", ".join(runs)}): '
                              f'evaluate each on the same seeds, e.g. {directory / (runs[0] if runs else "seed_0")}')
    raise CheckpointError(f'{directory} is not a VLAPolicy checkpoint: expected {CONFIG_FILE} and {MODEL_FILE} '
                          f'in it (or in {directory}/checkpoint); train one with `vla train --data DIR --out DIR`')


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The training metadata of a checkpoint directory ({} when it has none or it is unreadable)."""
    path = Path(directory) / METADATA_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}
