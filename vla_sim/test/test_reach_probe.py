"""benchmarks/bench_reach_probe.py, run as a user runs it, on a tiny random policy: per-episode
closest approaches to the marker, and summaries that agree with them."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from vla_policy.testing import make_tiny_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / 'benchmarks' / 'bench_reach_probe.py'


def test_reach_probe_reports_closest_approaches_and_what_they_sum_to(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', image_size=16)
    out = tmp_path / 'probe.json'
    run = subprocess.run([sys.executable, str(SCRIPT), '--checkpoint', str(ckpt), '--episodes', '3',
                          '--train-episodes', '1', '--json', str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    held = result['held_out_rows']
    assert [r['seed'] for r in held] == [1000, 1001, 1002]
    assert [r['seed'] for r in result['training_layout_rows']] == [0]
    closest = np.array([r['closest_m'] for r in held])
    for r in held:  # the closest point is that far from the marker, and success means within 1 cm
        gap = np.linalg.norm(np.subtract(r['closest_point'], r['marker']))
        assert abs(gap - r['closest_m']) < 1e-3
        assert r['success'] == (r['closest_m'] < 0.01) or r['closest_m'] < 0.0105
    summary = result['held_out']
    assert summary['median_closest_cm'] == round(float(np.median(closest)) * 100, 1)
    assert summary['within_2cm'] == int((closest < 0.02).sum()) and len(summary['corr_xyz']) == 3
    assert f"median closest approach {summary['median_closest_cm']} cm" in run.stdout
