"""SimEnv: the MuJoCo table-top robot behind a small reset/step API, with no ROS dependency.

Action: 7 absolute joint targets per 30 Hz tick (6 arm joints in rad, gripper opening in m).
Observation: RGB image(s), joint positions and velocities (7,), the task's instruction.
The same task and seed give bitwise-identical observations for the same actions.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering on the CPU, before mujoco loads

from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from vla_sim.ee_control import EE_ACTION_NAMES, EEDeltaController
from vla_sim.kinematics import ARM_JOINT_NAMES, SCENE_XML, TCP_SITE, ArmKinematics
from vla_sim.tasks import ALL_TASKS, CUBE_SIZE, TABLE_HEIGHT, Task
from vla_sim.workbench import OBJECT_NAMES as WORKBENCH_OBJECTS
from vla_sim.workbench import WORKBENCH_XML, WorkbenchState

JOINT_NAMES: tuple[str, ...] = (*ARM_JOINT_NAMES, "gripper")
FINGER_JOINTS = ("finger_left", "finger_right")
OBJECT_NAMES: tuple[str, ...] = ("red_cube", "green_cube", "blue_cube")

# Arm start pose: tool 25 cm above the table at (0.35, 0), pointing down; gripper open.
HOME_QPOS = np.array([0.0, 0.174, 1.666, 1.301, 0.0, 0.0])
HOME_GRIPPER = 0.08
HOME_NOISE = 0.03  # rad, uniform perturbation of the start pose, drawn from the seed

# Cube spawn region on the table (cube centres), reachable and in view of "front".
SPAWN_X = (0.30, 0.52)
SPAWN_Y = (-0.20, 0.20)
SPAWN_MIN_DIST = 0.10  # m between cube centres, leaves room for the open fingers
SPAWN_MAX_TRIES = 10_000


class PhysicsError(RuntimeError):
    """The simulation state became non-finite (it should never happen with valid actions)."""


class SimEnv:
    """The simulated arm, three cubes and the tasks of ``vla_sim.tasks.TASKS``.

    ``render_images=False`` skips rendering (``obs["image"]`` is None) for fast rollouts.
    ``cameras`` names the MJCF cameras to observe: the first fills ``obs["image"]``, every
    other one ``obs["image_<name>"]`` (e.g. ``cameras=("front", "wrist")``).

    A task of another scene (``Task.scene``, e.g. the workbench tasks of ``ALL_TASKS``) makes
    ``reset`` load that scene's model; the cameras it observes are then those of ``cameras``
    the scene has (the workbench has only "front": no wrist camera), and ``object_names`` and
    ``privileged_state()["objects"]`` name that scene's objects. ``xml_path`` replaces the
    table-top scene only.

    ``action_mode="ee_delta"`` makes ``step`` take end-effector actions instead of joint targets:
    a tool translation (3, m) and rotation vector (3, rad, world frame) per tick plus the gripper
    opening target (m), integrated into a commanded tool pose and turned into joint targets by
    IK (``vla_sim.ee_control``); ``action_low``/``action_high`` then bound those deltas, and
    ``ee_delta_for(joint_targets)`` converts a joint-space command (e.g. the scripted expert's).
    """

    def __init__(
        self,
        image_size: int = 224,
        control_hz: float = 30.0,
        render_images: bool = True,
        cameras: tuple[str, ...] | list[str] = ("front",),
        xml_path: str | Path = SCENE_XML,
        action_mode: str = "joint",
    ) -> None:
        if int(image_size) != image_size or image_size < 8:
            raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
        if not np.isfinite(control_hz) or control_hz <= 0:
            raise ValueError(f"control_hz must be a positive number, got {control_hz!r}")
        self._control_hz = control_hz
        self._requested_cameras = tuple(cameras)
        self._scene_xml = {"tabletop": Path(xml_path), "workbench": WORKBENCH_XML}
        self.scene = "tabletop"
        self._workbench: WorkbenchState | None = None
        self.image_size = int(image_size)
        self.render_images = bool(render_images)
        self._renderers: dict[int, mujoco.Renderer] = {}
        self._bind(mujoco.MjModel.from_xml_path(str(xml_path)), xml_path)
        if action_mode not in ("joint", "ee_delta"):
            raise ValueError(f"action_mode must be 'joint' or 'ee_delta', got {action_mode!r}")
        self.action_mode = action_mode
        # what each action number means: the joints' targets, or EE_ACTION_NAMES
        self.action_names: tuple[str, ...] = EE_ACTION_NAMES if action_mode == "ee_delta" else JOINT_NAMES
        self._ee: EEDeltaController | None = None
        if action_mode == "ee_delta":
            self._ee = EEDeltaController(ArmKinematics(xml_path))
            self.joint_action_low, self.joint_action_high = self.action_low, self.action_high
            self.action_low, self.action_high = self._ee.action_low, self._ee.action_high
            self.action_low.flags.writeable = False
            self.action_high.flags.writeable = False

        self.task: Task | None = None
        self.seed: int | None = None
        self.elapsed_steps = 0

    def _bind(self, model: mujoco.MjModel, xml_path: str | Path) -> None:
        """Take ``model`` as the simulated scene: look up its joints, actuators, cameras and objects."""
        control_hz, cameras = self._control_hz, self._requested_cameras
        self.model = model
        self.data = mujoco.MjData(self.model)
        m = self.model

        ticks = 1.0 / (control_hz * m.opt.timestep)
        self.n_substeps = int(round(ticks))
        if self.n_substeps < 1 or abs(ticks - self.n_substeps) > 1e-6:
            raise ValueError(
                f"control_hz={control_hz} is not a whole number of {m.opt.timestep:.6f} s physics steps;"
                f" use e.g. 30, 60, 20 or 10"
            )
        self.dt = self.n_substeps * m.opt.timestep
        all_cameras = tuple(m.camera(i).name for i in range(m.ncam))
        cameras = tuple(cameras)
        if self.scene != "tabletop":  # observe the requested cameras this scene has
            cameras = tuple(c for c in cameras if c in all_cameras) or all_cameras[:1]
        unknown = [c for c in cameras if c not in all_cameras]
        if not cameras or unknown:
            raise ValueError(f"unknown camera(s) {unknown or list(cameras)}; expected names from {list(all_cameras)}")
        self.cameras = cameras
        self.camera_names = all_cameras

        def jid(name: str) -> int:
            return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)

        actuators = tuple(m.actuator(i).name for i in range(m.nu))
        if actuators != JOINT_NAMES:
            raise ValueError(f"{xml_path} must define actuators {JOINT_NAMES} in this order, got {actuators}")
        arm_ids = [jid(n) for n in ARM_JOINT_NAMES]
        finger_ids = [jid(n) for n in FINGER_JOINTS]
        self._arm_qadr = np.array([m.jnt_qposadr[j] for j in arm_ids])
        self._arm_vadr = np.array([m.jnt_dofadr[j] for j in arm_ids])
        self._finger_qadr = np.array([m.jnt_qposadr[j] for j in finger_ids])
        self._finger_vadr = np.array([m.jnt_dofadr[j] for j in finger_ids])
        if self.scene == "tabletop":
            self._workbench = None
            self._obj_qadr = {o: int(m.jnt_qposadr[jid(o)]) for o in OBJECT_NAMES}
            self._obj_vadr = {o: int(m.jnt_dofadr[jid(o)]) for o in OBJECT_NAMES}
            self._obj_body = {o: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, o) for o in OBJECT_NAMES}
            self.object_names: tuple[str, ...] = OBJECT_NAMES
        else:
            self._workbench = WorkbenchState(m)
            self._obj_body = dict(self._workbench.contact_bodies)
            self.object_names = WORKBENCH_OBJECTS
        self._body_names = tuple(m.body(i).name for i in range(m.nbody))
        self._tcp = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, TCP_SITE)

        self.joint_names: tuple[str, ...] = JOINT_NAMES
        gripper_range = m.jnt_range[finger_ids].sum(axis=0)
        self.action_low = np.concatenate([m.jnt_range[arm_ids, 0], gripper_range[:1]])
        self.action_high = np.concatenate([m.jnt_range[arm_ids, 1], gripper_range[1:]])
        self.action_low.flags.writeable = False
        self.action_high.flags.writeable = False

    def _use_scene(self, scene: str) -> None:
        """Load ``scene``'s model if another one is loaded (the renderers go with the old model)."""
        if scene == self.scene:
            return
        if scene not in self._scene_xml:
            raise ValueError(f"unknown scene {scene!r}; expected one of {sorted(self._scene_xml)}")
        xml_path = self._scene_xml[scene]
        model = mujoco.MjModel.from_xml_path(str(xml_path))
        self.close()
        self.scene = scene
        ee_bounds = (self.action_low, self.action_high)
        self._bind(model, xml_path)
        if self.action_mode == "ee_delta":
            self.action_low, self.action_high = ee_bounds

    # ------------------------------------------------------------------ properties
    @property
    def sim_time(self) -> float:
        """Simulated seconds since reset."""
        return float(self.data.time)

    # ------------------------------------------------------------------ episode API
    def reset(self, task: str = "pick_red", seed: int | None = None) -> dict[str, Any]:
        """Start an episode of ``task``; the cube layout and start pose follow from ``seed``.

        ``seed=None`` draws a fresh seed (recorded in ``env.seed``).
        """
        if task not in ALL_TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(sorted(ALL_TASKS))}")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        seed = int(seed)
        rng = np.random.default_rng(seed)
        self._use_scene(ALL_TASKS[task].scene)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)

        q_arm = HOME_QPOS + rng.uniform(-HOME_NOISE, HOME_NOISE, size=6)
        d.qpos[self._arm_qadr] = q_arm
        d.qpos[self._finger_qadr] = HOME_GRIPPER / 2
        d.ctrl[:6] = q_arm
        d.ctrl[6] = HOME_GRIPPER
        if self._workbench is not None:
            self._workbench.place(rng, d)
        else:
            for name, (xy, yaw) in zip(OBJECT_NAMES, self._sample_cubes(rng)):
                adr = self._obj_qadr[name]
                d.qpos[adr : adr + 3] = (xy[0], xy[1], TABLE_HEIGHT + CUBE_SIZE / 2)
                d.qpos[adr + 3 : adr + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        mujoco.mj_forward(m, d)

        if self._ee is not None:
            self._ee.reset(q_arm)
        self.task = ALL_TASKS[task]
        self.seed = seed
        self.elapsed_steps = 0
        return self._observation()

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        """Apply absolute joint targets for one control tick; returns (obs, reward, done, info)."""
        if self.task is None:
            raise RuntimeError("SimEnv.step() called before reset(); call env.reset(task=..., seed=...) first")
        target = np.asarray(action, dtype=np.float64)
        if target.shape != (len(JOINT_NAMES),):
            raise ValueError(f"action must have shape ({len(JOINT_NAMES)},) for {JOINT_NAMES}, got {target.shape}")
        bad = [n for n, v in zip(JOINT_NAMES, target) if not np.isfinite(v)]
        if bad:
            raise ValueError(f"action has non-finite targets for joint(s) {bad}: {target.tolist()}")
        ee_clipped = False
        if self._ee is not None:
            target, ee_clipped = self._ee.step(target)
        low, high = (self.action_low, self.action_high) if self._ee is None else (self.joint_action_low,
                                                                                   self.joint_action_high)
        clipped_target = np.clip(target, low, high)
        clipped = bool(np.any(clipped_target != target)) or ee_clipped

        m, d = self.model, self.data
        d.ctrl[:] = clipped_target
        for _ in range(self.n_substeps):
            mujoco.mj_step(m, d)
        mujoco.mj_forward(m, d)  # poses, contacts and cameras of the new state
        if not (np.all(np.isfinite(d.qpos)) and np.all(np.isfinite(d.qvel))):
            raise PhysicsError(
                f"simulation diverged at t={d.time:.3f} s (task {self.task.name}, seed {self.seed},"
                f" action {clipped_target.tolist()}); please report this with the seed and actions"
            )
        self.elapsed_steps += 1

        state = self.privileged_state()
        success = self.task.success(state)
        time_limit = self.elapsed_steps >= self.task.max_steps
        info = {
            "success": success,
            "elapsed_steps": self.elapsed_steps,
            "time_limit_reached": time_limit,
            "task": self.task.name,
            "seed": self.seed,
            "clipped": clipped,
        }
        return self._observation(), self.task.reward(state), bool(success or time_limit), info

    def ee_delta_for(self, joint_targets: np.ndarray) -> np.ndarray:
        """(7,) end-effector action (action_mode "ee_delta") that commands the tool pose of the
        (7,) joint targets ``joint_targets``: how a joint-space expert drives an EE-action env."""
        if self._ee is None:
            raise RuntimeError("ee_delta_for() needs SimEnv(action_mode='ee_delta')")
        return self._ee.delta_for(joint_targets).astype(np.float32)

    # ------------------------------------------------------------------ state
    def joint_positions(self) -> np.ndarray:
        """(7,) arm joint positions (rad) and gripper opening (m), float64."""
        d = self.data
        return np.append(d.qpos[self._arm_qadr], d.qpos[self._finger_qadr].sum())

    def joint_velocities(self) -> np.ndarray:
        """(7,) arm joint velocities (rad/s) and gripper opening rate (m/s), float64."""
        d = self.data
        return np.append(d.qvel[self._arm_vadr], d.qvel[self._finger_vadr].sum())

    def privileged_state(self) -> dict[str, Any]:
        """Simulator ground truth: the only interface the scripted expert and the tasks read.

        Keys: task, dt, joint_positions (7,), joint_velocities (7,), ee_pos (3,), objects
        {name: {pos (3,), quat (4,) wxyz, linvel (3,)}}, contacts {name: (body names touching it)}.
        The expert uses task, dt, joint_positions, ee_pos and objects' pos/quat only.
        """
        d = self.data
        objects = {}
        if self._workbench is not None:
            objects = self._workbench.objects(d)
        for name in OBJECT_NAMES if self._workbench is None else ():
            qa, va = self._obj_qadr[name], self._obj_vadr[name]
            objects[name] = {
                "pos": d.qpos[qa : qa + 3].copy(),
                "quat": d.qpos[qa + 3 : qa + 7].copy(),
                "linvel": d.qvel[va : va + 3].copy(),
            }
        return {
            "task": self.task.name if self.task is not None else None,
            "dt": self.dt,
            "sim_time": self.sim_time,
            "joint_positions": self.joint_positions(),
            "joint_velocities": self.joint_velocities(),
            "ee_pos": d.site_xpos[self._tcp].copy(),
            "objects": objects,
            "contacts": self._object_contacts(),
        }

    def _object_contacts(self) -> dict[str, tuple[str, ...]]:
        d, m = self.data, self.model
        touching: dict[str, set[str]] = {name: set() for name in self._obj_body}
        if d.ncon:
            bodies = m.geom_bodyid[d.contact.geom[: d.ncon]]  # (ncon, 2)
            for b1, b2 in bodies:
                for obj in self._obj_body:
                    ob = self._obj_body[obj]
                    if b1 == ob:
                        touching[obj].add(self._body_names[b2])
                    elif b2 == ob:
                        touching[obj].add(self._body_names[b1])
        return {k: tuple(sorted(v)) for k, v in touching.items()}

    def _sample_cubes(self, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
        """Non-overlapping cube positions (xy) and yaws inside the spawn region."""
        for _ in range(SPAWN_MAX_TRIES):
            xy = np.column_stack([rng.uniform(*SPAWN_X, size=3), rng.uniform(*SPAWN_Y, size=3)])
            dists = [np.linalg.norm(xy[i] - xy[j]) for i in range(3) for j in range(i + 1, 3)]
            if min(dists) >= SPAWN_MIN_DIST:
                yaws = rng.uniform(-np.pi / 4, np.pi / 4, size=3)
                return [(xy[i], float(yaws[i])) for i in range(3)]
        raise RuntimeError(f"could not place 3 cubes {SPAWN_MIN_DIST} m apart in x={SPAWN_X}, y={SPAWN_Y}")

    # ------------------------------------------------------------------ images
    def render(self, camera: str = "front", size: int | None = None) -> np.ndarray:
        """(size, size, 3) uint8 RGB image of ``camera`` (default size: ``image_size``)."""
        if camera not in self.camera_names:
            raise ValueError(f"unknown camera {camera!r}; expected one of {list(self.camera_names)}")
        size = self.image_size if size is None else size
        if int(size) != size or size < 8:
            raise ValueError(f"size must be an integer >= 8, got {size!r}")
        renderer = self._renderer(int(size))
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def _renderer(self, size: int) -> mujoco.Renderer:
        if size not in self._renderers:
            vis = self.model.vis.global_
            vis.offwidth, vis.offheight = max(vis.offwidth, size), max(vis.offheight, size)
            try:
                self._renderers[size] = mujoco.Renderer(self.model, height=size, width=size)
            except Exception as err:  # mujoco.FatalError, or a missing EGL/OSMesa library
                raise RuntimeError(
                    f"cannot create an offscreen renderer ({err}); MuJoCo needs MUJOCO_GL=egl (or osmesa) set"
                    f" before mujoco is first imported (now MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}), and the"
                    " system libraries libegl1 libgl1-mesa-dri libopengl0; or use SimEnv(render_images=False)"
                ) from err
        return self._renderers[size]

    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {
            "joint_positions": self.joint_positions().astype(np.float32),
            "joint_velocities": self.joint_velocities().astype(np.float32),
            "instruction": self.task.instruction if self.task is not None else "",
        }
        for i, cam in enumerate(self.cameras):
            obs["image" if i == 0 else f"image_{cam}"] = self.render(cam) if self.render_images else None
        return obs

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Free the renderers (OpenGL contexts); the env can still step without images."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self) -> SimEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
