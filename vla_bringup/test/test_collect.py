"""`vla collect` end to end (sim + expert + gate + recorder over ROS) and the teleop scenario."""
from __future__ import annotations

import pytest

from vla_bringup.cli import main
from vla_bringup.collect import plan
from vla_bringup.scenarios import build_scenario
from vla_collect.episode_io import list_episodes, open_episode, validate_episode


def test_teleop_scenario_nodes():
    names = [s.name for s in build_scenario('teleop', {'output_dir': '/tmp/x'})]
    assert names[0] == 'sim_node' and 'joy_teleop' in names and names[-1] == 'teleop_collector'
    assert 'scripted_expert' not in names
    real = [s.name for s in build_scenario('teleop', {'use_sim': 'false'})]
    assert 'sim_node' not in real and 'teleop_collector' in real
    recorder = build_scenario('teleop', {'output_dir': '/data', 'language_command': 'wave'})[-1]
    assert recorder.parameters['output_dir'] == '/data'
    assert recorder.parameters['language_command'] == 'wave'


def test_plan_skips_recorded_pairs():
    assert plan(['a', 'b'], 2, 5, {('a', 6)}) == [('a', 5), ('b', 5), ('b', 6)]


@pytest.mark.ros
@pytest.mark.parametrize('timing', [
    [],  # lock-step, the default
    pytest.param(['--real-time-factor', '2'], marks=pytest.mark.slow),  # races a busy machine
], ids=['lockstep', 'real-time'])
def test_collect_records_valid_episodes_with_commands_and_success(tmp_path, capsys, timing):
    out = tmp_path / 'demos'
    assert main(['collect', '--tasks', 'pick_red', '--episodes', '1', '--out', str(out),
                 *timing, '--pick-tail', '0.5']) == 0
    episodes = list_episodes(out)
    assert len(episodes) == 1
    assert validate_episode(episodes[0]) == []
    with open_episode(episodes[0]) as ep:
        assert ep.language_command == 'pick up the red cube'
        assert ep.attrs['task'] == 'pick_red' and ep.attrs['seed'] == 0
        assert ep.success is True and len(ep) > 30
        # the wrist camera is recorded beside the main image (config/collect.yaml)
        assert ep.cameras == ['wrist'] and ep.camera_images('wrist').shape == ep.images.shape
        with_tail = ep.timestamps[-1] - ep.timestamps[0]  # seconds; dropped steps do not shorten it
    text = capsys.readouterr().out
    assert 'episodes per wall minute' in text and '1 episode(s) saved' in text
    # a second run finds the episode and records nothing new
    assert main(['collect', '--tasks', 'pick_red', '--episodes', '1', '--out', str(out)]) == 0
    assert list_episodes(out) == episodes
    # the recording goes on for --tail (0.5 s = 15 ticks by default; a pick: --pick-tail, 0 by
    # default) after success, so the demonstration shows the whole motion; 0 stops at the
    # moment of success
    # (with --record-bag: the raw topics also go to a rosbag2 beside the episode)
    assert main(['collect', '--tasks', 'pick_red', '--episodes', '1', '--out', str(tmp_path / 'no_tail'),
                 *timing, '--record-bag', '--image-size', '96']) == 0
    with open_episode(list_episodes(tmp_path / 'no_tail')[0]) as ep:
        assert 0.25 <= with_tail - (ep.timestamps[-1] - ep.timestamps[0]) <= 0.85
        # --image-size: the simulator renders, and the episode stores, 96 px frames
        assert ep.images.shape[1:] == (96, 96, 3) and ep.camera_images('wrist').shape[1:] == (96, 96, 3)
    check_bag_reimports_as_the_recorded_episode(tmp_path / 'no_tail')


def check_bag_reimports_as_the_recorded_episode(out):
    """The episode's bag, cut again by `vla dataset import --format rosbag`, gives the steps
    the recorder wrote: the same instruction, success and length within one tick, and at
    matching timestamps the same joint positions and actions."""
    import numpy as np
    import yaml

    from vla_collect.dataset_cli import main as dataset_main
    [episode] = list_episodes(out)
    bag = episode.with_name('episode_000000.bag')
    assert (bag / 'metadata.yaml').is_file() and not list(out.glob('*.tmp'))
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['custom_data']['vla.language_command'] == 'pick up the red cube'
    topics = {t['topic_metadata']['name'] for t in meta['topics_with_message_count']}
    assert {'/camera/image_raw', '/camera/wrist/image_raw', '/joint_states',
            '/joint_trajectory_controller/joint_trajectory'} <= topics
    mapping = out.parent / 'mapping.yaml'
    mapping.write_text(yaml.safe_dump({
        'image': '/camera/image_raw', 'cameras': {'wrist': '/camera/wrist/image_raw'},
        'joint_states': '/joint_states', 'action': '/joint_trajectory_controller/joint_trajectory',
        'fps': 30, 'time': 'header'}))
    imported = out.parent / 'imported'
    assert dataset_main(['import', '--format', 'rosbag', str(bag), str(imported), '--mapping',
                         str(mapping), '--instruction', 'pick up the red cube']) == 0
    [again] = list_episodes(imported)
    with open_episode(episode) as a, open_episode(again) as b:
        assert abs(len(a) - len(b)) <= 1
        shared, ia, ib = np.intersect1d(np.round(a.timestamps[:], 3), np.round(b.timestamps[:], 3),
                                        return_indices=True)
        assert len(shared) >= len(a) - 2
        assert np.allclose(a.joint_positions[:][ia], b.joint_positions[:][ib], atol=1e-9)
        assert np.array_equal(a.images[:][ia[:5]], b.images[:][ib[:5]])
        # the action of a step: the command that answered it, in the bag as in the recording
        # (within one tick where the importer's staleness rule pairs the previous one)
        same = np.all(np.isclose(a.actions[:][ia], b.actions[:][ib], atol=1e-9), axis=1)
        assert same.mean() >= 0.9, f'{(~same).sum()} of {len(same)} steps paired another command'


@pytest.mark.ros
def test_lockstep_collection_pairs_each_frame_with_the_command_that_answered_it(tmp_path):
    """Lock-step: the action recorded at step t (timestamp T_t) is the command the scripted
    expert published after seeing tick t (its request stamped T_t, as the gate forwarded it),
    not the one of the tick before or after; no emergency stop, no dropped step."""
    import numpy as np

    from vla_bringup.scenarios import REQUEST_TOPIC
    result, seen, logs = _record_lockstep_episode(tmp_path / 'demos', [REQUEST_TOPIC])
    requests = seen[REQUEST_TOPIC]  # expert request stamp (its clock: the tick it answered) -> positions
    assert result.path and result.success and result.estops == 0, (result, logs)
    # no dropped step, unless the simulator stepped on its lock-step timeout (a node too slow
    # to answer on a loaded machine; seen once at load ~4 with 1 timeout and 1 drop)
    assert result.dropped <= result.timeouts, result
    with open_episode(result.path) as ep:
        ticks = np.round(ep.timestamps[:] * 30).astype(int)
        actions = ep.actions[:]
    gaps = np.diff(ticks) - 1
    assert np.all(gaps >= 0) and gaps.sum() <= result.dropped, 'one recorded step per tick'
    matched = [np.abs(actions[i] - requests[t]).max() < 1e-5
               for i, t in enumerate(ticks) if t in requests]
    assert len(matched) >= len(ticks) - 1 and np.mean(matched) >= 0.95, np.mean(matched)
    # and never the command of the tick before or after (where that one differs from its own),
    # except on a tick the simulator stepped on its timeout (a late command on a loaded machine):
    # the robot then followed the previous command, and the recording says so
    neighbours = [(i, t, other) for i, t in enumerate(ticks) for other in (t - 1, t + 1)
                  if t in requests and other in requests
                  and np.abs(requests[other] - requests[t]).max() > 1e-4
                  and np.abs(actions[i] - requests[other]).max() <= 1e-5]
    assert len(neighbours) <= result.timeouts, (neighbours, result.timeouts)


def test_exec_noise_records_the_experts_clean_command():
    from vla_bringup.scenarios import EXPERT_LABEL_TOPIC, ROBOT_COMMAND_TOPIC, collection_scenario
    specs = {s.name: s for s in collection_scenario({'exec_noise': '0.02', 'lockstep': True}, '/d')}
    assert specs['scripted_expert'].parameters['exec_noise'] == 0.02
    assert specs['teleop_collector'].remappings == ((ROBOT_COMMAND_TOPIC, EXPERT_LABEL_TOPIC),)
    plain = {s.name: s for s in collection_scenario({'lockstep': True}, '/d')}
    assert 'exec_noise' not in plain['scripted_expert'].parameters
    assert plain['teleop_collector'].remappings == ()


@pytest.mark.ros
def test_lockstep_collection_with_exec_noise_labels_each_step_with_the_clean_command(tmp_path):
    """DART-style collection: the robot executes the expert's command plus noise, the episode
    records the expert's clean command of the same tick (its label), and says which noise ran."""
    import numpy as np

    from vla_bringup.scenarios import EXPERT_LABEL_TOPIC, REQUEST_TOPIC
    result, seen, logs = _record_lockstep_episode(tmp_path / 'demos', [REQUEST_TOPIC, EXPERT_LABEL_TOPIC],
                                                  {'exec_noise': 0.01}, exec_noise=0.01)
    assert result.path and result.success and result.estops == 0, (result, logs)
    requests, labels = seen[REQUEST_TOPIC], seen[EXPERT_LABEL_TOPIC]
    with open_episode(result.path) as ep:
        assert float(ep.attrs['exec_noise']) == 0.01
        ticks = np.round(ep.timestamps[:] * 30).astype(int)
        actions = ep.actions[:]
    both = [(i, t) for i, t in enumerate(ticks) if t in labels and t in requests]
    assert len(both) >= len(ticks) - 2
    is_label = [np.abs(actions[i] - labels[t]).max() < 1e-5 for i, t in both]
    assert np.mean(is_label) >= 0.95, np.mean(is_label)
    noisy = [np.abs(requests[t] - labels[t]).max() > 1e-4 for _, t in both]
    assert np.mean(noisy) >= 0.5, np.mean(noisy)  # the robot got the noisy command
    # the labels move as the expert's own commands do: at most max_joint_speed / 30 per tick
    # (between recorded steps one tick apart: a step dropped on a loaded machine spans two)
    steps = np.abs(np.diff(actions[:, :6], axis=0)).max(axis=1)
    assert steps[np.diff(ticks) == 1].max() <= 1.5 / 30 + 1e-4


def _record_lockstep_episode(out, topics, metadata=None, **values):
    """One lock-step pick_red seed 3 demonstration through the collection scenario (``values``
    added to its launch values), with every JointTrajectory on ``topics`` kept as
    {topic: {tick: positions}}; returns (Recorded, that dict, the nodes' logs)."""
    import os

    import numpy as np
    from trajectory_msgs.msg import JointTrajectory

    from vla_bringup.collect_driver import Collection
    from vla_bringup.episodes import private_context
    from vla_bringup.scenarios import collection_scenario
    from vla_common.launching import NodeGroup, wait_for

    specs = collection_scenario({'task': 'pick_red', 'seed': 3, 'lockstep': True, **values}, str(out))
    with NodeGroup(specs) as group:
        context = private_context(int(os.environ['ROS_DOMAIN_ID']))
        collection = Collection(context, metadata)
        seen = {topic: {} for topic in topics}  # topic -> {tick (stamp x 30): positions}
        for topic, store in seen.items():
            collection.runner.node.create_subscription(
                JointTrajectory, topic, lambda m, store=store: store.__setitem__(
                    round((m.header.stamp.sec + m.header.stamp.nanosec * 1e-9) * 30),
                    np.asarray(m.points[0].positions)), 1000)
        try:
            collection.wait_ready(timeout=90.0)
            collection.wait_flowing(timeout=60.0)
            # the observer's own subscriptions are discovered apart from the recorder's: on a
            # loaded machine they can match the publishers after the episode began, and then miss
            # its first ticks; wait until each has received a message of the flowing ticks
            assert wait_for(lambda: all(seen.values()), 60.0, collection.runner.spin_once), (
                f'the test\'s observer saw nothing on {[t for t, s in seen.items() if not s]} within 60 s')
            result = collection.record_lockstep('pick_red', 3, 120.0, keep_failure=True, tail=0.2)
        finally:
            collection.close()
            context.try_shutdown()
        logs = '\n'.join(f'--- {p.spec.name}\n{p.output(1500)}' for p in group.processes)
    return result, seen, logs
