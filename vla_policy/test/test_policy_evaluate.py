import json

from vla_policy.evaluate import main
from vla_policy.testing import make_tiny_checkpoint
from vla_sim import JOINT_NAMES, SimEnv


def test_offline_evaluation_writes_results_json_and_videos(tmp_path, capsys):
    env = SimEnv(image_size=32, render_images=False)
    mid = (env.action_low + env.action_high) / 2  # a random policy that commands mid-range targets
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINT_NAMES, image_size=32, action_mean=mid)
    out = tmp_path / 'eval.json'
    assert main(['--checkpoint', str(ckpt), '--tasks', 'pick_red', '--episodes', '1', '--json', str(out),
                 '--videos', str(tmp_path / 'videos')]) == 0
    result = json.loads(out.read_text())
    task = result['tasks']['pick_red']
    assert task['n'] == 1 and task['successes'] == 0 and task['mean_length'] == 240  # the time limit
    assert result['seed'] == 1000 and len(result['overall']['ci95']) == 2
    assert result['latency_ms']['p99'] > 0
    assert [p.name for p in (tmp_path / 'videos').iterdir()] == ['pick_red_failure_seed1000.gif']
    assert 'pick_red' in capsys.readouterr().out
    # the keys of `vla evaluate`'s results, with null where nothing in-process observes the figure
    from vla_common.evaluation import EPISODE_KEYS, OVERALL_KEYS, RESULT_KEYS, TASK_KEYS
    assert set(RESULT_KEYS) <= set(result) and result['runner'] == 'in-process'
    assert tuple(task) == TASK_KEYS and tuple(result['overall']) == OVERALL_KEYS
    assert task['estops'] is None and task['timeouts'] == 0 and result['overall']['estops'] is None
    assert result['control_rate_hz'] is None and result['simulation'] is None and result['controller'] is None
    assert result['machine']['cores'] >= 1 and len(result['latency_ms']['samples']) == 240
    (episode,) = result['episodes']
    assert tuple(episode) == EPISODE_KEYS and episode['estops'] is None and not episode['timed_out']
    assert episode['sim_time'] > 0 and episode['video'].endswith('pick_red_failure_seed1000.gif')


def test_wrong_robot_checkpoint_is_refused(tmp_path, capsys):
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', joint_names=['a', 'b', 'c'], image_size=32)
    assert main(['--checkpoint', str(ckpt), '--tasks', 'pick_red', '--episodes', '1']) == 1
    assert 'does not match' in capsys.readouterr().err
    assert main(['--checkpoint', str(tmp_path / 'nothing'), '--episodes', '1']) == 1
    assert main(['--checkpoint', str(ckpt), '--tasks', 'fly', '--episodes', '1']) == 1



def test_an_end_effector_policy_is_evaluated_with_end_effector_actions(tmp_path, monkeypatch):
    """A checkpoint trained on EE deltas (its action names) drives SimEnv(action_mode='ee_delta')."""
    import vla_sim
    from vla_sim import EE_ACTION_NAMES
    modes = []

    class Recording(SimEnv):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            modes.append(self.action_mode)

    monkeypatch.setattr(vla_sim, 'SimEnv', Recording)
    still = [0.0] * 6 + [0.04]  # no motion, gripper half open
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINT_NAMES, action_names=EE_ACTION_NAMES,
                                image_size=32, action_mean=still, action_std=1e-4)
    out = tmp_path / 'eval.json'
    assert main(['--checkpoint', str(ckpt), '--tasks', 'reach_marker', '--episodes', '1', '--json', str(out)]) == 0
    assert modes == ['ee_delta']
    assert json.loads(out.read_text())['tasks']['reach_marker']['successes'] == 0  # standing still
