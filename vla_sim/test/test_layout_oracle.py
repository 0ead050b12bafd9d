"""benchmarks/bench_layout_oracle.py: the copied demonstrations carry each episode's layout after the
joint state, the oracle simulator's observations carry the same, and a run as a user runs it
(tiny preset, real simulator) trains and writes the evaluator's results."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

BENCH = Path(__file__).resolve().parents[2] / 'benchmarks'
sys.path.insert(0, str(BENCH))  # the oracle imports the perception probe's helpers
spec = importlib.util.spec_from_file_location('bench_layout_oracle', BENCH / 'bench_layout_oracle.py')
oracle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(oracle)


def _demos(out: Path) -> None:
    run = subprocess.run([sys.executable, str(BENCH / 'make_sim_dataset.py'), '--out', str(out), '--episodes', '1',
                          '--tasks', 'press_button,open_drawer', '--image-size', '32', '--cameras', 'front',
                          '--distinct-layouts', '--tail', '0'], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr


def test_layout_oracle_copies_the_layout_into_the_state_and_evaluates_with_it(tmp_path):
    import vla_sim
    _demos(tmp_path / 'demos')
    out = tmp_path / 'run'
    run = subprocess.run([sys.executable, str(BENCH / 'bench_layout_oracle.py'), '--data', str(tmp_path / 'demos'),
                          '--out', str(out), '--tasks', 'press_button', '--episodes', '1', '--',
                          '--steps', '2', '--preset', 'tiny', '--threads', '1', '--val-fraction', '0'],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    env_class, cols = oracle.load_run(out)
    names = oracle.column_names(cols)
    assert {'button', 'drawer', 'peg', 'marker'} <= {n for n, _ in cols}
    env = vla_sim.SimEnv(image_size=32, render_images=False)
    seeds = []
    for path in sorted((tmp_path / 'demos').glob('episode_*.hdf5')):
        with h5py.File(path) as src, h5py.File(out / 'data' / path.name) as dst:
            seeds.append(int(src.attrs['seed']))
            layout = oracle.layout_vector(oracle.layout_at(env, str(src.attrs['task']), seeds[-1]), cols)
            state = dst['observations/joint_positions'][()]
            assert np.array_equal(state[:, :7], src['observations/joint_positions'][()])
            assert np.allclose(state[:, 7:], layout) and dst['observations/joint_velocities'].shape == state.shape
            assert [str(n) for n in dst.attrs['joint_names']][7:] == names
    env.close()
    assert seeds == [0, 1]  # --distinct-layouts: the second task goes on from the first one's seeds
    # the oracle simulator adds the same layout to every observation
    env = env_class(image_size=32, render_images=False)
    obs = env.reset(task='open_drawer', seed=1)
    assert len(env.joint_names) == 7 + len(names)
    assert np.allclose(obs['joint_positions'][7:], layout)
    obs, *_ = env.step(obs['joint_positions'][:7])
    assert np.allclose(obs['joint_positions'][7:], layout)
    env.close()
    results = json.loads((out / 'results.json').read_text())
    assert results['layout_oracle']['columns'] == names and results['runner'] == 'in-process'
    assert list(results['tasks']) == ['press_button'] and results['overall']['n'] == 1
    # the stage funnel of the same policy in the same simulator: the same episode, the same outcome
    probe = subprocess.run([sys.executable, str(BENCH / 'bench_workbench_probe.py'), '--layout-oracle', str(out),
                            '--tasks', 'press_button', '--episodes', '1', '--json', str(tmp_path / 'funnel.json')],
                           capture_output=True, text=True, timeout=600)
    assert probe.returncode == 0, probe.stderr[-2000:]
    funnel = json.loads((tmp_path / 'funnel.json').read_text())
    assert funnel['layout_oracle'] and funnel['checkpoint'] == str(out / 'train')
    assert funnel['tasks']['press_button']['stages']['success'] == results['tasks']['press_button']['successes']


def test_blank_images_leave_the_policy_the_state_alone(tmp_path):
    _demos(tmp_path / 'demos')
    cols = oracle.convert(tmp_path / 'demos', tmp_path / 'copy', blank_images=True)
    with h5py.File(sorted((tmp_path / 'copy').glob('episode_*.hdf5'))[0]) as h5:
        images = h5['observations/images'][()]
        assert images.shape[1:] == (32, 32, 3) and (images == oracle.BLANK).all()
    env = oracle.oracle_env(cols, blank_images=True)(image_size=32)
    obs = env.reset(task='press_button', seed=0)
    assert (obs['image'] == oracle.BLANK).all() and len(obs['joint_positions']) == 7 + len(oracle.column_names(cols))
    env.close()
