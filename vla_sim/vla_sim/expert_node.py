"""``ros2 run vla_sim scripted_expert``: the scripted expert as a ROS command source.

Reads the simulator's privileged state (``/sim/task_status``: task, episode, object poses and
the joint positions of the same tick; ``/joint_states`` where a status has none), and publishes the
same ``JointTrajectory`` on ``/vla/command`` that a teleoperator would.  It restarts its plan
whenever the simulator starts a new episode.  ``vla_sim.ScriptedExpert`` plans it: the cube
expert for the cube table's tasks, the workbench expert for the workbench's (``ALL_TASKS``).
Simulation only: a real robot has no privileged state.

With ``exec_noise`` > 0 the executed command carries Gaussian noise while the clean command goes
out on ``~/label`` (``/scripted_expert/label``), which ``vla collect --exec-noise`` records as
the action (DART, Laskey et al. 2017): the demonstrations visit states a little off the
expert's path, labelled with how the expert gets back, which is what a cloned policy needs after
its own small errors.

With ``action_mode: ee_delta`` the expert commands in end-effector space, as a policy with
end-effector delta actions does: each tick's plan becomes a tool-pose delta (translation,
rotation vector, gripper opening; ``vla_sim.ee_control``), published on ``~/ee_command``
(``/scripted_expert/ee_command``, a ``JointTrajectory`` named ``EE_ACTION_NAMES``, stamped as the
joint command), and the joint targets it sends on ``/vla/command`` are that delta's, from the same
``EEDeltaController`` a controller uses (the gate keeps checking joint targets).  The recorder
stores both (``ee_action_topic``).

On sim time (``use_sim_time``, the simulator's ``/clock``) the command of a tick is computed from
that tick's status: when the timer fires before the status stamped with the same clock time has
arrived, the expert acts on its arrival, so with a lock-step simulator the command published after
tick t always answers the state of tick t.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from vla_common.messages import parse_joint_state, trajectory_msg
from vla_common.parameters import describe
from vla_sim.ee_control import EE_ACTION_NAMES, EEDeltaController
from vla_sim.env import JOINT_NAMES
from vla_sim.expert import QUIET_PHASES
from vla_sim.kinematics import ArmKinematics
from vla_sim.tasks import ALL_TASKS
from vla_sim.workbench_expert import ScriptedExpert

#: phases of the workbench expert without executed noise: where the fingers touch a 1 cm marker,
#: push the button or the puck, grasp the peg or insert it (its own ``noise`` spares the first three)
WORKBENCH_QUIET_PHASES = ('descend', 'press', 'push', 'close', 'insert')


def quiet_phases(task: str) -> tuple[str, ...]:
    """The expert's phases of ``task`` in which ``exec_noise`` is not executed."""
    known = ALL_TASKS.get(task)
    return WORKBENCH_QUIET_PHASES if known is not None and known.scene == 'workbench' else QUIET_PHASES


class RosPrivilegedState:
    """What :class:`ScriptedExpert` reads from a SimEnv, rebuilt from ROS messages."""

    def __init__(self, dt: float) -> None:
        self.joint_names = JOINT_NAMES
        self.dt = dt
        self.kinematics = ArmKinematics()
        self.joint_positions: np.ndarray | None = None
        self.status: dict[str, Any] | None = None

    def ready(self) -> bool:
        return self.joint_positions is not None and self.status is not None

    def privileged_state(self) -> dict[str, Any]:
        q = self.joint_positions
        ee_pos, _ = self.kinematics.fk(q)
        return {
            'task': self.status['task'], 'dt': self.dt, 'joint_positions': q.copy(),
            'ee_pos': ee_pos,
            'objects': {name: {'pos': np.asarray(o['pos'], dtype=np.float64),
                               'quat': np.asarray(o['quat'], dtype=np.float64)}
                        for name, o in self.status['objects'].items()},
        }


class ExpertNode(Node):
    def __init__(self) -> None:
        super().__init__('scripted_expert')
        d = self.declare_parameter
        d('rate', 30.0, describe('command rate (Hz, node clock)', 0.1, 1000.0, read_only=True))
        d('max_joint_speed', 1.5, describe('rad/s a joint target may move, below the safety '
                                           "monitor's 2.0 rad/s", 0.001, 2.0, read_only=True))
        d('noise', 0.0, describe('std (rad) of random perturbations of the arm targets, for more '
                                 'diverse demonstrations', 0.0, 10.0, read_only=True))
        d('noise_seed', 0, describe('seed of the noise', 0, 2**63 - 1, read_only=True))
        d('exec_noise', 0.0, describe(
            'std (rad) of Gaussian noise on the executed arm targets (not while closing on, placing '
            'or releasing a cube, nor while touching, pushing, grasping or inserting on the '
            'workbench), drawn per episode from (noise_seed, the episode\'s seed); the '
            'clean command goes out on ~/label for the recorder: DART-style demonstrations, whose '
            'states wander off the expert\'s path and whose labels show the way back', 0.0, 1.0,
            read_only=True))
        d('action_mode', 'joint', describe("'joint': joint targets; 'ee_delta': end-effector deltas "
                                           'on ~/ee_command, executed as their joint targets',
                                           read_only=True))
        rate = float(self.get_parameter('rate').value)
        if rate <= 0:
            raise ValueError(f'rate must be > 0, got {rate}')
        self.period = 1.0 / rate
        self.source = RosPrivilegedState(dt=self.period)
        self.expert = ScriptedExpert(
            self.source, max_joint_speed=float(self.get_parameter('max_joint_speed').value),
            noise=float(self.get_parameter('noise').value),
            seed=int(self.get_parameter('noise_seed').value), kinematics=self.source.kinematics)
        self.episode: int | None = None
        self.due: float | None = None  # clock time of a timer tick not acted on yet
        self.on_sim_time = bool(self.get_parameter('use_sim_time').value)
        self.refused_joint_states = 0
        self.command_pub = self.create_publisher(JointTrajectory, '/vla/command', 10)
        self.exec_noise = float(self.get_parameter('exec_noise').value)
        self.noise_seed = int(self.get_parameter('noise_seed').value)
        self.noise_rng = np.random.default_rng(self.noise_seed)
        self.label_pub = (self.create_publisher(JointTrajectory, '~/label', 10)
                          if self.exec_noise > 0 else None)
        mode = str(self.get_parameter('action_mode').value)
        if mode not in ('joint', 'ee_delta'):
            raise ValueError(f"action_mode must be 'joint' or 'ee_delta', got {mode!r}")
        self.ee = EEDeltaController(ArmKinematics()) if mode == 'ee_delta' else None
        self.ee_episode: int | None = None  # the episode the EE controller was reset for
        self.ee_pub = (self.create_publisher(JointTrajectory, '~/ee_command', 10)
                       if self.ee is not None else None)
        self.create_subscription(JointState, '/joint_states', self._on_joint_state,
                                 qos_profile_sensor_data)
        self.create_subscription(String, '/sim/task_status', self._on_status, 10)
        self.create_timer(self.period, self._tick)

    def _on_joint_state(self, msg: JointState) -> None:
        if self.source.status is not None and 'joint_positions' in self.source.status:
            return  # the status carries the joint positions of its own tick (see _on_status)
        try:
            positions, _ = parse_joint_state(msg, JOINT_NAMES)
        except ValueError as exc:
            self.refused_joint_states += 1
            self.get_logger().warning(f'refused /joint_states: {exc} ({self.refused_joint_states} '
                                      'refused so far)', throttle_duration_sec=5.0)
            return
        self.source.joint_positions = positions

    def _on_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
            status['task'], status['objects'], status['episode']
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            self.get_logger().warning(f'malformed /sim/task_status ignored: {exc}',
                                      throttle_duration_sec=5.0)
            return
        self.source.status = status
        if 'joint_positions' in status:
            # the joint positions of the same tick as the object poses and the episode number:
            # /joint_states and this topic can arrive in either order around a reset, and a plan
            # made from the new episode's objects and the old episode's arm jumps the arm
            self.source.joint_positions = np.asarray(status['joint_positions'], dtype=np.float64)
        if status['episode'] != self.episode:
            self.episode = status['episode']
            self.expert.reset()
            # the same noise for the same episode seed, on any machine and in any order
            self.noise_rng = np.random.default_rng([self.noise_seed, int(status.get('seed', 0))])
        self._act()

    def _tick(self) -> None:
        self.due = self.get_clock().now().nanoseconds * 1e-9
        self._act()

    def _act(self) -> None:
        """Publish the command of the due tick, once, from the status of that tick (on sim time;
        the status is stamped with the simulator's clock) or the newest one (wall time)."""
        if self.due is None or not self.source.ready():
            return
        stamp = self.source.status.get('stamp')
        if self.on_sim_time and isinstance(stamp, (int, float)) and stamp < self.due - 1e-6:
            return  # this tick's status is still on its way: act when it arrives
        self.due = None
        action = self.expert.act()
        stamp = self.get_clock().now().to_msg()
        if self.ee is not None:
            if self.ee_episode != self.episode:  # the commanded pose starts at the measured one
                self.ee.reset(self.source.joint_positions[:6])
                self.ee_episode = self.episode
            # applied as recorded (float32): a controller fed the recorded deltas integrates
            # the same poses
            delta = self.ee.clip(self.ee.delta_for(action)).astype(np.float32).astype(np.float64)
            action = self.ee.step(delta)[0].astype(np.float32)
            self.ee_pub.publish(trajectory_msg(EE_ACTION_NAMES, [self.period], delta[None], stamp))
        executed = action
        if self.label_pub is not None:
            noise = self.noise_rng.normal(0.0, self.exec_noise, size=6)  # every tick: one stream
            if self.expert.phase not in quiet_phases(str(self.source.status['task'])):
                executed = action.copy()
                executed[:6] += noise
            self.label_pub.publish(trajectory_msg(JOINT_NAMES, [self.period], action[None], stamp))
        self.command_pub.publish(trajectory_msg(JOINT_NAMES, [self.period], executed[None], stamp))


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = ExpertNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
