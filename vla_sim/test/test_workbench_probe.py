"""benchmarks/bench_workbench_probe.py: the stage funnel counts what the per-episode values say, and
a run as a user runs it (tiny random policy, real simulator) writes rows that agree with its summary."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from vla_policy.testing import make_tiny_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / 'benchmarks' / 'bench_workbench_probe.py'
spec = importlib.util.spec_from_file_location('bench_workbench_probe', SCRIPT)
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)


def test_funnel_counts_each_stage_from_the_episode_values():
    rows = [{'seed': 1, 'success': False, 'tool_to_grasp_cm': 1.5, 'lift_cm': 3.0, 'carried_offset_cm': 4.0},
            {'seed': 2, 'success': True, 'tool_to_grasp_cm': 0.5, 'lift_cm': 5.0, 'carried_offset_cm': 0.3},
            {'seed': 3, 'success': False, 'tool_to_grasp_cm': 6.0, 'lift_cm': 0.0}]  # never carried: no offset
    s = probe.summarise('insert_peg', rows)
    assert s['stages'] == {'at the grasp': 2, 'peg lifted': 2, 'over the hole': 1, 'success': 1}
    assert s['medians']['tool_to_grasp_cm'] == 1.5 and s['medians']['carried_offset_cm'] == 2.15
    assert probe.line('insert_peg', s).startswith('insert_peg: at the grasp 2/3, peg lifted 2/3, over the hole 1/3')


def test_probe_runs_workbench_tasks_and_its_rows_agree_with_the_summary(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', image_size=16)
    out = tmp_path / 'probe.json'
    run = subprocess.run([sys.executable, str(SCRIPT), '--checkpoint', str(ckpt), '--tasks', 'press_button,open_drawer',
                          '--episodes', '2', '--json', str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert list(result['tasks']) == ['press_button', 'open_drawer']
    for task, entry in result['tasks'].items():
        rows = entry['rows']
        assert [r['seed'] for r in rows] == [1000, 1001]
        assert entry['stages']['success'] == sum(r['success'] for r in rows)
        key = probe.HEADLINE[task]
        assert entry['medians'][key] == round(float(np.median([r[key] for r in rows])), 2)
        assert all(r[key] >= 0 for r in rows)
        assert f'{task}: ' in run.stdout
    press = result['tasks']['press_button']['rows']
    assert all(r['success'] == (r['depth_mm'] >= 8.0) for r in press)  # the task's own check, from the same state


def test_probe_refuses_a_task_it_has_no_stages_for(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), '--checkpoint', str(tmp_path), '--tasks', 'pick_red'],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and 'no stages for' in run.stderr
