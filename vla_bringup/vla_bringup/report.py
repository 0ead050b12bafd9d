"""The evaluation report of a run directory: ``vla report RUN_DIR`` (ROS-free).

Reads what ``vla demo`` leaves in ``RUN_DIR/{data,checkpoint,eval}`` and writes

    RUN_DIR/report/index.html    one self-contained page (figures and small rollouts inlined)
    RUN_DIR/report/report.md     the same tables, linking RUN_DIR/report/figures/*.png

Inputs (every one optional except at least one results JSON; what is missing is stated in
the report):

- ``eval/policy.json``, ``eval/baseline.json``: results JSON of ``vla evaluate`` (DESIGN.md);
  ``latency_ms.samples`` (per-tick latencies) feed the histogram, ``episodes[i].video``
  (a path relative to RUN_DIR) the rollouts;
- ``metrics.jsonl`` or ``metrics.csv`` (the ``vla train`` log, both written side by side) in
  ``checkpoint/`` (``vla demo`` trains with ``--out RUN_DIR/checkpoint``) or RUN_DIR itself
  (after ``vla demo --seeds K``: the first model's, ``checkpoint/seed_<S>/``);
- ``stages.json``: ``{stage: {seconds, status}}`` of ``vla demo``;
- ``eval/videos/**/*.gif|*.mp4``: rollouts not named by an episode, matched to a task, to
  success/failure and to policy/baseline by their path below ``eval/videos``;
- ``eval/compare*.json`` (``vla compare ... --json``): the comparison section (without one, the
  policy is compared with the baseline here, as ``vla compare`` would); a ``sequential`` entry of
  a results JSON (``vla evaluate --until-decided``) adds the sequential test's rule and decision;
  a ``training_seeds`` entry (``vla evaluate --checkpoint OUT`` of a ``--seeds`` run) the spread
  across training seeds;
- ``eval/async_latency.json`` or ``bench_async/results.json`` (or ``--latency-bench FILE``): the
  results of ``benchmarks/bench_async_latency.py``, plotted as success and mean jerk against
  injected latency per stitching policy.

The work is split by concern: ``report_inputs`` (with ``report_metrics``, the training log)
reads and checks the run directory, ``report_figures`` draws the plots, ``report_sections`` lays
the report out as one list of sections (its parts: ``report_model``) and ``report_render``
renders it through ``templates/report.md.j2`` and
``templates/report.html.j2``.

Rollout media: GIFs and MP4s up to ``max_embed_mb`` are embedded as data URIs (``<img>`` /
``<video>``), so index.html can be mailed on its own; larger ones are linked by a path
relative to the report, which works while the run directory stays together.
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from vla_bringup.report_inputs import ReportError, load_run
from vla_bringup.report_render import render_html, render_markdown
from vla_bringup.report_sections import build_report
from vla_common.files import atomic_write_bytes, atomic_write_text

__all__ = ['DEFAULT_MAX_EMBED_MB', 'ReportError', 'add_arguments', 'run', 'write_report']

DEFAULT_MAX_EMBED_MB = 5.0  # larger rollout media are linked instead of inlined


def write_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 max_embed_mb: float = DEFAULT_MAX_EMBED_MB,
                 latency_bench: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write ``index.html`` and ``report.md`` (and ``figures/*.png``) for ``run_dir``.

    ``out_dir`` defaults to ``run_dir/report``. Returns ``(html_path, md_path)``. Raises
    ``ReportError`` when the run directory has no results JSON or an input is malformed.
    """
    inputs = load_run(run_dir, latency_bench)
    out = Path(out_dir).resolve() if out_dir is not None else inputs.run_dir / 'report'
    report = build_report(inputs, created=datetime.now(timezone.utc).isoformat(timespec='seconds'))
    for figure in report.figures:
        atomic_write_bytes(out / 'figures' / f'{figure.name}.png', figure.png)
    html_path, md_path = out / 'index.html', out / 'report.md'
    atomic_write_text(md_path, render_markdown(report, out))
    atomic_write_text(html_path, render_html(report, out, int(max_embed_mb * 1e6)))
    return html_path, md_path


# -- vla report -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('run_dir', type=Path,
                        help='run directory of `vla demo` (holds eval/, checkpoint/, stages.json)')
    parser.add_argument('--out', type=Path, default=None,
                        help='where to write index.html, report.md and figures/ '
                             '(default: RUN_DIR/report)')
    parser.add_argument('--max-embed-mb', type=float, default=DEFAULT_MAX_EMBED_MB,
                        help='rollout GIF/MP4 files up to this size are embedded in index.html, '
                             'larger ones linked (default: %(default)s)')
    parser.add_argument('--latency-bench', type=Path, default=None, metavar='RESULTS.json',
                        help='results JSON of benchmarks/bench_async_latency.py to plot (default: '
                             'RUN_DIR/eval/async_latency.json or RUN_DIR/bench_async/results.json '
                             'when there)')


def run(args: argparse.Namespace, _rest: list[str]) -> int:
    from vla_bringup.commands import CommandError
    if args.max_embed_mb < 0:
        raise CommandError(f'--max-embed-mb must be >= 0, got {args.max_embed_mb}')
    try:
        html_path, md_path = write_report(args.run_dir, args.out, args.max_embed_mb,
                                          args.latency_bench)
    except ReportError as exc:
        raise CommandError(str(exc)) from exc
    print(f'report written to {html_path} and {md_path}', file=sys.stderr)
    return 0
