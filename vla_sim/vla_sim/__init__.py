"""vla_sim: a MuJoCo table-top arm, its tasks and a scripted expert, with no ROS dependency.

The ROS node (``vla_sim.sim_node``) is a thin adapter around :class:`SimEnv`. ``TASKS`` are the
cube table's four tasks (what "all tasks" means everywhere); ``WORKBENCH_TASKS`` a second scene
(one fixed camera, small targets, pushing, a button); ``ALL_TASKS`` both, by name.
"""

from vla_sim.env import JOINT_NAMES, SimEnv  # first: it sets MUJOCO_GL before mujoco loads
from vla_sim.ee_control import EE_ACTION_NAMES, action_mode_for
from vla_sim.kinematics import ArmKinematics
from vla_sim.tasks import ALL_TASKS, SUITES, TASKS, WORKBENCH_TASKS, Task, resolve_tasks
from vla_sim.workbench_expert import ScriptedExpert  # the cube expert, dispatching workbench tasks

__all__ = ["ALL_TASKS", "ArmKinematics", "EE_ACTION_NAMES", "action_mode_for", "JOINT_NAMES", "SUITES", "ScriptedExpert", "SimEnv", "TASKS",
           "Task", "WORKBENCH_TASKS", "resolve_tasks"]
