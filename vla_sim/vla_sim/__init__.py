"""vla_sim: a MuJoCo table-top arm, its tasks and a scripted expert, with no ROS dependency.

The ROS node (``vla_sim.sim_node``) is a thin adapter around :class:`SimEnv`.
"""

from vla_sim.env import JOINT_NAMES, SimEnv
from vla_sim.expert import ScriptedExpert
from vla_sim.kinematics import ArmKinematics
from vla_sim.tasks import TASKS, Task

__all__ = ["ArmKinematics", "JOINT_NAMES", "ScriptedExpert", "SimEnv", "TASKS", "Task"]
