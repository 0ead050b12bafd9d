"""The training log of a run for the report (``vla report``): ``metrics.jsonl`` or ``metrics.csv``
as ``vla train`` writes them, read into one ``Metrics`` (rows without a step or loss counted,
not fatal). ``Metrics``, ``load_metrics`` and ``optional_float`` are also importable from
:mod:`vla_bringup.report_inputs`.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

METRICS_FILES = ('metrics.jsonl', 'metrics.csv')  # the trainer writes both; jsonl keeps every key


@dataclass
class Metrics:
    """The training log: one row per logged step."""

    source: Path
    steps: list[int] = field(default_factory=list)
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss)
    val: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    lr: list[tuple[int, float]] = field(default_factory=list)
    elapsed_s: float | None = None
    skipped: int = 0  # rows without a step or any loss value
    ignored: list[Path] = field(default_factory=list)  # other metrics files not read


TRAIN_KEYS = ('train_loss', 'loss')
VAL_KEYS = ('val_loss', 'validation_loss', 'eval_loss')


def optional_float(value) -> float | None:
    """A finite float from a JSON/CSV cell, or None (empty, 'nan', not a number)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value or value.lower() in ('nan', 'none', 'null'):
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _first(row: dict, keys: Sequence[str]) -> float | None:
    for key in keys:
        value = optional_float(row.get(key))
        if value is not None:
            return value
    return None


def _metric_rows(path: Path) -> Iterable[dict | None]:
    """The rows of a metrics file as dicts (None for a line that is not a JSON object)."""
    if path.suffix == '.csv':
        with path.open(newline='') as f:
            for row in csv.DictReader(f):
                yield {(k or '').strip(): v for k, v in row.items()}
        return
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            yield None
            continue
        yield row if isinstance(row, dict) else None


def load_metrics(directory: Path) -> Metrics | None:
    """The trainer's log in ``directory``, or None when there is none.

    ``metrics.jsonl`` is read when it has loss rows, else ``metrics.csv``; the train loss is
    ``train_loss`` or ``loss``, the validation loss ``val_loss`` (empty on most rows).
    """
    found = [directory / name for name in METRICS_FILES if (directory / name).is_file()]
    if not found:
        return None
    for i, path in enumerate(found):
        metrics = _read_metrics(path, ignored=found[:i] + found[i + 1:])
        if metrics.train or metrics.val:
            return metrics
    return _read_metrics(found[0], ignored=found[1:])  # none usable: report on the first


def _read_metrics(path: Path, ignored: list[Path]) -> Metrics:
    metrics = Metrics(source=path, ignored=ignored)
    for row in _metric_rows(path):
        step = optional_float(row.get('step')) if row else None
        train = _first(row, TRAIN_KEYS) if row else None
        val = _first(row, VAL_KEYS) if row else None
        if step is None or (train is None and val is None):
            metrics.skipped += 1
            continue
        step = int(step)
        metrics.steps.append(step)
        if train is not None:
            metrics.train.append((step, train))
        if val is not None:
            metrics.val.append((step, val))
        lr = optional_float(row.get('lr'))
        if lr is not None:
            metrics.lr.append((step, lr))
        elapsed = optional_float(row.get('elapsed_s'))
        if elapsed is not None:
            metrics.elapsed_s = max(elapsed, metrics.elapsed_s or 0.0)
    return metrics
