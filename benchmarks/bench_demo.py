"""`vla demo` with torch's CPU kernels restricted to AVX2 (the 2-core AVX2 laptops and CI
runners of issue 11) on any machine, and its stage table.

    ./run.sh bench bench_demo.py                       # the full demo, runs/bench_demo
    ./run.sh bench bench_demo.py --out /tmp/d -- --quick --tasks pick_red

Runs ``vla demo`` in a child process with ``ATEN_CPU_CAPABILITY=avx2`` and
``ONEDNN_MAX_CPU_ISA=AVX2`` (checked there with ``torch.backends.cpu.get_cpu_capability()``);
arguments after ``--`` go to ``vla demo``.  Prints the CPU, the simulator timing, the wall time of
every stage, the policy's and the baseline's success, emergency stops, lock-step timeouts and the
controller's overruns.  ``--no-restrict`` runs on the machine's own kernels for comparison.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESTRICT = {'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2'}


def stage_table(run_dir: Path) -> list[str]:
    """The stage table and results of a demo run directory."""
    from vla_bringup.demo import STAGES
    from vla_common.evaluation import controller_text, machine_text, simulation_text
    stages = json.loads((run_dir / 'stages.json').read_text())
    machine = next((s['machine'] for s in stages.values() if s.get('machine')), None)
    lines = [f'machine: {machine_text(machine)}', '',
             f'{"stage":<10}{"status":<9}{"seconds":>9}  command']
    for stage in STAGES:
        info = stages.get(stage, {})
        lines.append(f'{stage:<10}{info.get("status", "-"):<9}{info.get("seconds", 0):>9.1f}  '
                     f'{info.get("command", "")}')
    lines.append(f'{"total":<10}{"":<9}{sum(s.get("seconds", 0) for s in stages.values()):>9.1f}')
    results = {}
    for name in ('policy', 'baseline'):
        path = run_dir / 'eval' / f'{name}.json'
        if path.is_file():
            results[name] = json.loads(path.read_text())
    lines.append('')
    for name, result in results.items():
        overall = result['overall']
        lines.append(f'{name:<9} success {overall["successes"]}/{overall["n"]} '
                     f'({overall["success_rate"]:.0%}, CI {overall["ci95"][0]:.2f}-{overall["ci95"][1]:.2f}), '
                     f'e-stops {overall.get("estops", 0)}, simulation '
                     f'{simulation_text(result.get("simulation"))}'
                     + (f', controller {controller_text(result.get("controller"))}'
                        if result.get('controller') else '')
                     + (f', latency p50 {result["latency_ms"]["p50"]} / p99 {result["latency_ms"]["p99"]} ms'
                        if result.get('latency_ms') else ''))
    if {'policy', 'baseline'} <= set(results):
        policy, baseline = (results[k]['overall']['success_rate'] for k in ('policy', 'baseline'))
        if baseline:
            lines.append(f'policy / baseline success: {policy / baseline:.0%} (target >= 80%)')
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = []
    if '--' in argv:
        argv, extra = argv[:argv.index('--')], argv[argv.index('--') + 1:]
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, default=Path('runs/bench_demo'),
                        help='run directory of the demo (resumes like vla demo)')
    parser.add_argument('--no-restrict', action='store_true',
                        help="use the machine's own CPU kernels (no AVX2 restriction)")
    parser.add_argument('--table-only', action='store_true',
                        help='print the table of an existing run directory, run nothing')
    args = parser.parse_args(argv)
    rc = 0
    if not args.table_only:
        env = dict(os.environ)
        if not args.no_restrict:
            env.update(RESTRICT)
        check = subprocess.run([sys.executable, '-c', 'import torch; '
                                'print(torch.backends.cpu.get_cpu_capability())'],
                               env=env, capture_output=True, text=True)
        restricted = ', '.join(f'{k}={env.get(k, "")}' for k in RESTRICT)
        print(f'torch CPU capability in the demo: {check.stdout.strip() or check.stderr.strip()} '
              f'({os.cpu_count()} cores; {restricted})', flush=True)
        start = time.monotonic()
        rc = subprocess.run([sys.executable, '-m', 'vla_bringup.cli', 'demo', '--out',
                             str(args.out), *extra], env=env).returncode
        print(f'\nvla demo exited {rc} after {time.monotonic() - start:.0f} s', flush=True)
        if not (args.out / 'stages.json').is_file():
            return rc or 1
    print('\n'.join(stage_table(args.out)))
    return rc


if __name__ == '__main__':
    sys.exit(main())
