"""benchmarks/bench_perception_probe.py: which coordinates it regresses, its error figures, and a
run as a user runs it (tiny encoder, real simulator frames)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / 'benchmarks' / 'bench_perception_probe.py'
spec = importlib.util.spec_from_file_location('bench_perception_probe', SCRIPT)
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)


def test_targets_skip_fixed_objects_and_keep_z_only_where_it_varies():
    rng = np.random.default_rng(0)
    positions = {'fixed': np.tile([0.4, 0.0, 0.1], (10, 1)),
                 'on_table': np.c_[rng.uniform(0, 1, (10, 2)), np.full(10, 0.02)],
                 'floating': rng.uniform(0, 1, (10, 3))}
    cols = probe.target_columns(positions)
    assert cols == [('on_table', 2), ('floating', 3)]
    y = probe.stack_targets(positions, cols)
    assert y.shape == (10, 5)
    pred = y.copy()
    pred[:, 0] += 0.03  # 3 cm off in x for on_table, exact for floating
    assert probe.median_errors_cm(pred, y, cols) == {'on_table': 3.0, 'floating': 0.0}


def test_probe_run_on_the_workbench_reports_every_moving_object(tmp_path):
    out = tmp_path / 'probe.json'
    run = subprocess.run([sys.executable, str(SCRIPT), '--preset', 'tiny', '--source-size', '32', '--layouts', '4', '6',
                          '--held-out', '3', '--steps', '3', '--json', str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    objects = result['objects']
    assert objects['marker'] == 3 and objects['button'] == 2 and objects['peg'] == 2  # the marker floats
    assert [p['layouts'] for p in result['probes']] == [4, 6]
    for p in result['probes']:
        assert set(p['held_out_cm']) == set(objects) and all(v >= 0 for v in p['held_out_cm'].values())
    assert set(result['guess_the_mean_cm']) == set(objects)
    assert 'guess the mean' in run.stdout and '6 layouts: held-out median error' in run.stdout


def test_probe_refuses_bad_settings_with_a_clear_message(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), '--task', 'no_such_task', '--layouts', '4', '--steps', '1'],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and 'unknown task' in run.stderr
    run = subprocess.run([sys.executable, str(SCRIPT), '--set', 'image_size=4', '--layouts', '4'],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and 'image_size' in run.stderr
