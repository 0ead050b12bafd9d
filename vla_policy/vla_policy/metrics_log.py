"""The metrics of a run: ``metrics.csv``, ``metrics.jsonl`` and the ``loss.png`` plot."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from vla_common.files import atomic_path


class MetricsLog:
    """Append-only ``metrics.csv`` and ``metrics.jsonl`` (rows may carry different keys)."""

    FIELDS = ['step', 'epoch', 'progress', 'lr', 'loss', 'l1', 'mse', 'grad_norm', 'val_loss', 'samples_per_s',
              'elapsed_s', 'cpu_s']

    def __init__(self, directory: Path, truncate_after_step: int | None = None) -> None:
        self.csv_path = directory / 'metrics.csv'
        self.json_path = directory / 'metrics.jsonl'
        self.rows: list[dict[str, Any]] = []
        if self.json_path.exists():
            for line in self.json_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if truncate_after_step is None or row.get('step', 0) <= truncate_after_step:
                    self.rows.append(row)
        self._rewrite()

    def _rewrite(self) -> None:
        with self.json_path.open('w') as fj:
            for row in self.rows:
                fj.write(json.dumps(row) + '\n')
        with self.csv_path.open('w', newline='') as fc:
            writer = csv.DictWriter(fc, fieldnames=self.FIELDS, extrasaction='ignore')
            writer.writeheader()
            writer.writerows(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with self.json_path.open('a') as fj:
            fj.write(json.dumps(row) + '\n')
        with self.csv_path.open('a', newline='') as fc:
            csv.DictWriter(fc, fieldnames=self.FIELDS, extrasaction='ignore').writerow(row)

    def plot(self, path: Path) -> None:
        """Training and validation loss against step, log scale."""
        import matplotlib
        matplotlib.use('Agg', force=False)
        import matplotlib.pyplot as plt
        train = [(r['step'], r['loss']) for r in self.rows if r.get('loss') is not None]
        val = [(r['step'], r['val_loss']) for r in self.rows if r.get('val_loss') is not None]
        fig, ax = plt.subplots(figsize=(7, 4))
        if train:
            ax.plot(*zip(*train), label='train loss', lw=1)
        if val:
            ax.plot(*zip(*val), 'o-', label='validation loss', lw=1.5, ms=3)
        ax.set_xlabel('step')
        ax.set_ylabel('loss (normalized actions)')
        ax.set_yscale('log')
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
