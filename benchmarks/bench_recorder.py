"""The teleop_collector recorder on one long episode at 30 Hz in simulation.

Runs sim_node (224x224 rgb8 at 30 Hz, wall time), the scripted expert as the command source
(straight to the robot topic) and teleop_collector on a private ROS domain, records one
episode of ``--minutes`` minutes and prints:

- dropped-step ratio (target < 0.1 %) and the drop reasons,
- recorder memory (RSS) growth from the first 10 s to the end (target < 50 MB),
- recorder CPU share (CPU seconds / wall seconds, % of one core),
- megabytes per minute of episode at 224x224, and the achieved recording rate.

    ./run.sh bench bench_recorder.py                 # 10 minutes
    python benchmarks/bench_recorder.py --minutes 1 --json /tmp/recorder.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--minutes', type=float, default=10.0, help='episode length (default 10)')
    parser.add_argument('--image-size', type=int, default=224, help='camera image size (default 224)')
    parser.add_argument('--out', type=Path, default=None,
                        help='episode directory (default: a temporary one, deleted afterwards)')
    parser.add_argument('--json', type=Path, default=None, help='also write the figures here')
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error(f'--minutes must be > 0, got {args.minutes}')
    return args


def group_usage(pgid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds) summed over the processes of a process group (Linux /proc)."""
    tick = os.sysconf('SC_CLK_TCK')
    page = os.sysconf('SC_PAGE_SIZE')
    rss, cpu = 0.0, 0.0
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / 'stat').read_text()
            fields = stat[stat.rindex(')') + 2:].split()
            if int(fields[2]) != pgid:  # field 5 of stat: process group
                continue
            cpu += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            rss += int((entry / 'statm').read_text().split()[1]) * page / 2**20
        except (OSError, ValueError, IndexError):
            continue
    return rss, cpu


def main() -> int:
    args = parse_args()
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger
    from trajectory_msgs.msg import JointTrajectory
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState
    from tqdm import tqdm

    from vla_bringup.scenarios import ROBOT_COMMAND_TOPIC, config_file
    from vla_collect.episode_io import open_episode
    from vla_common.launching import NodeGroup, NodeSpec, isolated_ros_env
    from vla_common.qos import LATCHED
    from vla_common.testing import GraphProbe

    env = isolated_ros_env()
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                           'ROS_LOG_DIR')})
    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix='bench_recorder_')
        out = Path(tmp.name)
    else:
        out = args.out
    robot, sim = config_file('robot.yaml'), config_file('sim.yaml')
    specs = [
        NodeSpec('vla_sim', 'sim_node', 'vla_sim.sim_node', 'sim_node', param_files=(robot, sim),
                 parameters={'task': 'stack_green_on_red', 'seed': 0,
                             'image_size': args.image_size}),
        NodeSpec('vla_sim', 'scripted_expert', 'vla_sim.expert_node', 'scripted_expert',
                 param_files=(robot, sim), remappings=(('/vla/command', ROBOT_COMMAND_TOPIC),)),
        NodeSpec('vla_collect', 'teleop_collector', 'vla_collect.collector_node',
                 'teleop_collector', param_files=(robot, config_file('collect.yaml')),
                 parameters={'output_dir': str(out), 'language_command': 'benchmark episode'}),
    ]
    with NodeGroup(specs, env=env) as group:
        recorder = group.processes[2]
        probe = GraphProbe('bench_recorder_probe')
        try:
            statuses = probe.subscribe(String, '/teleop_collector/status', LATCHED)
            probe.subscribe(JointTrajectory, ROBOT_COMMAND_TOPIC)
            joint_states = probe.subscribe(JointState, '/joint_states', qos_profile_sensor_data)
            if not probe.wait_for_count(ROBOT_COMMAND_TOPIC, 30, timeout=120):
                print('the simulator and the expert did not start:\n' + '\n'.join(
                    f'--- {p.spec.name}\n{p.output()}' for p in group.processes), file=sys.stderr)
                return 1
            answer = probe.call(Trigger, '/teleop_collector/start', Trigger.Request())
            if answer is None or not answer.success:
                print(f'recording did not start: {answer.message if answer else "no answer"}',
                      file=sys.stderr)
                return 1
            t0 = time.monotonic()
            n_js = len(joint_states)
            _, cpu0 = group_usage(recorder.pid)
            duration = args.minutes * 60.0
            rss_samples: list[tuple[float, float]] = []
            with tqdm(total=int(duration), desc='recording', unit='s', file=sys.stderr) as bar:
                while (elapsed := time.monotonic() - t0) < duration:
                    time.sleep(min(5.0, duration - elapsed))
                    rss, _ = group_usage(recorder.pid)
                    rss_samples.append((time.monotonic() - t0, rss))
                    bar.n = int(time.monotonic() - t0)
                    bar.set_postfix_str(f'rss {rss:.0f} MB')
                    bar.refresh()
                    if group.dead():
                        print(f'node {group.dead()[0].spec.name} died:\n{group.dead()[0].output()}',
                              file=sys.stderr)
                        return 1
            wall = time.monotonic() - t0
            _, cpu1 = group_usage(recorder.pid)
            arrivals = [t for t, _ in joint_states[n_js:]]
            gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
            source_stalls = sum(g > 0.2 for g in gaps)
            joint_states.clear()
            stop = probe.call(SetBool, '/teleop_collector/stop', SetBool.Request(data=True),
                              timeout=60.0)
            if stop is None or not stop.success:
                print(f'saving failed: {stop.message if stop else "no answer"}', file=sys.stderr)
                return 1
            summary = json.loads(stop.message)
            status = json.loads(statuses[-1][1].data) if statuses else {}
        finally:
            probe.close()
    path = Path(summary['path'])
    with open_episode(path) as ep:
        steps = len(ep)
        span = float(ep.timestamps[-1] - ep.timestamps[0])
        reasons = ep.attrs.get('drop_reasons', '')
    size_mb = path.stat().st_size / 2**20
    baseline = next((r for t, r in rss_samples if t >= 10.0), rss_samples[0][1])
    figures = {
        'minutes': round(wall / 60.0, 2),
        'steps': steps,
        'dropped': summary['dropped'],
        'dropped_ratio': summary['dropped'] / max(1, steps + summary['dropped']),
        'drop_reasons': reasons,
        'recording_rate_hz': round(steps / span, 2) if span > 0 else None,
        'rss_mb_at_10s': round(baseline, 1),
        'rss_mb_end': round(rss_samples[-1][1], 1),
        'rss_growth_mb': round(rss_samples[-1][1] - baseline, 1),
        'cpu_share_percent_of_one_core': round(100.0 * (cpu1 - cpu0) / wall, 1),
        'file_mb': round(size_mb, 1),
        'mb_per_minute': round(size_mb / (span / 60.0), 2) if span > 0 else None,
        'image_size': args.image_size,
        'bad_messages': status.get('bad_messages', {}),
        'sim_gaps_over_200ms': source_stalls,
        'sim_longest_gap_ms': round(1000 * max(gaps, default=0.0), 1),
    }
    print(f'recorder benchmark ({figures["minutes"]} min at 30 Hz, {args.image_size}x{args.image_size}):')
    print(f'  dropped steps      {figures["dropped"]} of {steps + figures["dropped"]} '
          f'({figures["dropped_ratio"]:.3%}; target < 0.1%) [{reasons}]')
    print(f'  recording rate     {figures["recording_rate_hz"]} Hz')
    print(f'  simulator stalls   {source_stalls} gaps > 200 ms between /joint_states as a separate '
          f'subscriber saw them (longest {figures["sim_longest_gap_ms"]} ms): drops the source caused')
    print(f'  recorder RSS       {figures["rss_mb_at_10s"]} MB at 10 s -> {figures["rss_mb_end"]} MB '
          f'(growth {figures["rss_growth_mb"]} MB; target < 50 MB)')
    print(f'  recorder CPU       {figures["cpu_share_percent_of_one_core"]} % of one core')
    print(f'  episode size       {figures["file_mb"]} MB = {figures["mb_per_minute"]} MB per minute')
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
