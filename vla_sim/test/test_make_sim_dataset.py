"""benchmarks/make_sim_dataset.py, run as a user runs it: end-effector demonstrations with the
noise in the action's own space (--ee-noise) keep clean, corrective labels."""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / 'benchmarks' / 'make_sim_dataset.py'


def record(out: Path, *extra: str) -> np.ndarray:
    subprocess.run([sys.executable, str(SCRIPT), '--out', str(out), '--episodes', '1',
                    '--tasks', 'push_to_goal', '--image-size', '32', '--action-mode', 'ee_delta',
                    '--exec-noise', '0', *extra], check=True, capture_output=True, timeout=300)
    with h5py.File(next(out.glob('episode_*.hdf5')), 'r') as f:
        assert f.attrs['action_space'] == 'ee_delta' and f.attrs['success']
        return f['actions_ee'][:]


def lag1(actions: np.ndarray) -> float:
    t = actions[:, :3]
    return float(np.nanmean([np.corrcoef(t[:-1, i], t[1:, i])[0, 1] for i in range(3)]))


def test_ee_noise_perturbs_the_executed_delta_and_the_labels_correct_it(tmp_path):
    clean = record(tmp_path / 'clean')
    noisy = record(tmp_path / 'noisy', '--ee-noise', '0.25')
    assert np.all(np.isfinite(noisy)) and noisy.shape[1] == 7
    # the same seed and expert: without noise the deltas are smooth; with it each label also
    # undoes the last tick's noise, so consecutive labels correlate less
    assert lag1(clean) > 0.8 and lag1(noisy) < lag1(clean) - 0.2, (lag1(clean), lag1(noisy))
    # labels are the expert's commands, never beyond the per-tick limit by more than the noise
    assert np.abs(noisy[:, :3]).max() < 0.02


def test_demonstration_seeds_never_reach_the_evaluation_seeds(tmp_path):
    for extra in (['--episodes', '1001', '--tasks', 'press_button'],
                  ['--episodes', '300', '--tasks', 'workbench', '--distinct-layouts']):
        run = subprocess.run([sys.executable, str(SCRIPT), '--out', str(tmp_path / 'd'), *extra],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and 'evaluation seeds (1000+)' in run.stderr, run.stderr
        assert not (tmp_path / 'd').exists()
