"""Emergency-stop reaction: from the first violating joint state to the gate's last forwarded command.

Starts the real safety_monitor and command_gate (robot.yaml + safety.yaml); this script plays
the robot (/joint_states at 30 Hz) and a command source (/vla/command at 30 Hz).  Each trial
publishes a joint state over the velocity limit and records when the gate's output stops:
the reaction is the arrival of the gate's last command (its hold) minus the publish time of
the violating state.  Target: within one control tick (33 ms).

    ./run.sh bench bench_estop.py --trials 20
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--trials', type=int, default=20, help='number of emergency stops')
    args = parser.parse_args(argv)

    from vla_common.launching import NodeGroup, isolated_ros_env
    env = isolated_ros_env()
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    from std_srvs.srv import Trigger
    from tqdm import tqdm
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from vla_bringup.scenarios import ROBOT_COMMAND_TOPIC, REQUEST_TOPIC, safety_nodes
    from vla_common.qos import LATCHED
    from vla_common.testing import GraphProbe, wait_for

    import yaml
    from vla_bringup.scenarios import config_file
    joints = yaml.safe_load(open(config_file('robot.yaml')))['/**']['ros__parameters']['joint_names']
    q = np.zeros(len(joints))
    velocity = {'value': 0.0}
    reactions, after_stop, before_gate_knew = [], 0, 0

    def is_stop(msg) -> bool:
        return len(msg.points) > 1 or abs(msg.points[0].time_from_start.nanosec - 33_333_333) > 1000
    with NodeGroup(safety_nodes({}), env=env) as group:
        probe = GraphProbe('bench_estop')
        try:
            probe.subscribe(JointTrajectory, ROBOT_COMMAND_TOPIC)
            probe.subscribe(String, '/emergency_stop', LATCHED)

            def tick() -> None:
                v = np.zeros(len(joints))
                v[0] = velocity['value']
                probe.publish(JointState, '/joint_states',
                              JointState(name=joints, position=q.tolist(), velocity=v.tolist()),
                              qos_profile_sensor_data)
                point = JointTrajectoryPoint(positions=q.tolist())
                point.time_from_start.nanosec = 33_333_333
                probe.publish(JointTrajectory, REQUEST_TOPIC,
                              JointTrajectory(joint_names=joints, points=[point]))
            probe.timer(1 / 30, tick)
            if not wait_for(lambda: probe.messages(ROBOT_COMMAND_TOPIC), 60):
                sys.exit('the gate forwarded nothing:\n' + '\n'.join(p.output() for p in group.processes))
            for _ in tqdm(range(args.trials), desc='e-stops', unit='trial'):
                time.sleep(0.5)  # normal operation
                probe.clear()
                t0 = time.monotonic()
                velocity['value'] = 3.0  # over the 2.0 rad/s limit
                probe.publish(JointState, '/joint_states', JointState(
                    name=joints, position=q.tolist(), velocity=[3.0] + [0.0] * (len(joints) - 1)),
                    qos_profile_sensor_data)
                if probe.wait_for_message('/emergency_stop', lambda m: m.data != '', 5.0) is None:
                    sys.exit('no emergency stop')
                time.sleep(0.5)  # commands keep coming; none may pass
                out = probe.stamped(ROBOT_COMMAND_TOPIC)
                reactions.append((out[-1][0] - t0) * 1e3 if out else 0.0)
                stop_at = [t for t, m in probe.stamped('/emergency_stop') if m.data][0]
                # the gate's stop: a controlled stop (several points) or a one-point hold (its
                # time_from_start is hold_time, not the source's 33.33 ms)
                stops = [k for k, (_, m) in enumerate(out) if is_stop(m)]
                after_stop += sum(1 for _, m in out[stops[0]:] if not is_stop(m)) if stops else len(out)
                # forwarded before the gate knew, yet arriving after /emergency_stop reached us
                before_gate_knew += sum(1 for t, m in out[:stops[0] if stops else len(out)]
                                        if t > stop_at)
                velocity['value'] = 0.0
                time.sleep(0.1)
                answer = probe.call(Trigger, '/emergency_stop/reset', Trigger.Request())
                if answer is None or not answer.success:
                    sys.exit(f'reset failed: {answer}')
        finally:
            probe.close()
    r = np.array(reactions)
    print(f'e-stop reaction over {len(r)} trials (violating joint state -> last command forwarded '
          f'by the gate): p50 {np.percentile(r, 50):.1f} ms, p99 {np.percentile(r, 99):.1f} ms, '
          f'max {r.max():.1f} ms (target <= 33 ms); commands forwarded after the gate\'s stop: '
          f'{after_stop}; commands the gate forwarded before it knew of the stop that reached the '
          f'robot topic after /emergency_stop reached this probe: {before_gate_knew}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
