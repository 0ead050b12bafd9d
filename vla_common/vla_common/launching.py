"""Start, watch and stop ROS 2 node processes without the ``ros2`` CLI.

The ``vla`` runner and the tests use this where ``ros2 launch`` is not installed (the PyPI
ROS 2 wheels ship rclpy but no launch system).  Each node runs as ``python -m <module>
--ros-args ...`` in its own process group and is stopped with SIGINT, as ``ros2 launch``
does.  No rclpy import here.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class NodeSpec:
    """One node of a scenario: what ``launch_ros.actions.Node`` would be given."""

    package: str  # ROS package that installs the executable
    executable: str  # console script name (``ros2 run <package> <executable>``)
    module: str  # python module whose ``main()`` the executable calls
    name: str  # node name
    param_files: tuple[str, ...] = ()  # absolute paths of YAML parameter files
    parameters: Mapping[str, Any] = field(default_factory=dict)  # launch-time overrides
    remappings: tuple[tuple[str, str], ...] = ()  # (from, to) topic remappings

    def ros_args(self) -> list[str]:
        """The ``--ros-args`` part of the command line."""
        args = ['--ros-args', '-r', f'__node:={self.name}']
        for path in self.param_files:
            args += ['--params-file', str(path)]
        for key, value in self.parameters.items():
            # -p values are parsed as YAML; JSON is valid YAML and quotes strings safely.  The
            # node-name prefix makes them win over the node's section of a params file, as
            # launch_ros's parameter dicts do (a bare -p loses to it).
            args += ['-p', f'{self.name}:{key}:={json.dumps(value)}']
        for src, dst in self.remappings:
            args += ['-r', f'{src}:={dst}']
        return args

    def command(self) -> list[str]:
        """The full command line that runs this node with the current interpreter."""
        return [sys.executable, '-m', self.module, *self.ros_args()]


#: ROS_DOMAIN_IDs handed out to private graphs (Fast DDS's default ports allow 0-101 and 215-232)
DOMAIN_IDS = range(1, 101)
_DOMAIN_LOCKS: dict[int, Any] = {}  # domain id -> open lock file, held while this process lives


def reserve_domain_id(lock_dir: str | Path | None = None) -> int:
    """A ROS_DOMAIN_ID that no other run on this machine holds, kept until this process exits.

    Concurrent runs (a test suite beside a demo, two benchmarks) that drew the same id would
    share one graph: a test's joint states would reach the demo's safety monitor and stop it.
    Each id is an exclusive ``flock`` on a file in ``lock_dir``; the kernel releases it when the
    process ends, so a crashed run never keeps its id.
    """
    import fcntl
    directory = Path(lock_dir or os.path.join(tempfile.gettempdir(), 'vla_ros_domains'))
    directory.mkdir(parents=True, exist_ok=True)
    ids = list(DOMAIN_IDS)
    start = random.Random(os.getpid() ^ time.time_ns()).randrange(len(ids))
    for domain_id in ids[start:] + ids[:start]:
        if domain_id in _DOMAIN_LOCKS:
            continue
        handle = open(directory / f'{domain_id}.lock', 'a')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _DOMAIN_LOCKS[domain_id] = handle
        return domain_id
    raise RuntimeError(f'every ROS_DOMAIN_ID in {DOMAIN_IDS.start}-{DOMAIN_IDS.stop - 1} is held by '
                       f'another run on this machine (locks in {directory})')


def release_domain_id(domain_id: int) -> None:
    """Give back a domain reserved by :func:`reserve_domain_id` (no-op for any other id)."""
    handle = _DOMAIN_LOCKS.pop(int(domain_id), None)
    if handle is not None:
        handle.close()


@contextlib.contextmanager
def domain_held(env: Mapping[str, str]):
    """``with domain_held(env), NodeGroup(specs, env=env):`` gives the domain of an
    :func:`isolated_ros_env` back once the group has stopped (a long test run starts many)."""
    try:
        yield env
    finally:
        release_domain_id(int(env['ROS_DOMAIN_ID']))


def isolated_ros_env(domain_id: int | None = None, base: Mapping[str, str] | None = None,
                     log_dir: str | None = None) -> dict[str, str]:
    """An environment for a private ROS graph on this machine.

    Keeps the parent's environment (the ROS wheels need its ``LD_LIBRARY_PATH``), reserves a
    ``ROS_DOMAIN_ID`` no other run on this machine holds unless one is given, limits discovery to localhost and keeps ROS logs
    out of the user's home.
    """
    env = dict(os.environ if base is None else base)
    if domain_id is None:
        domain_id = reserve_domain_id()
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.setdefault('ROS_LOG_DIR', log_dir or tempfile.mkdtemp(prefix='vla_ros_log_'))
    env.setdefault('MUJOCO_GL', 'egl')
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


class NodeProcess:
    """A node running in its own process group, with its output in a log file."""

    def __init__(self, spec: NodeSpec, env: Mapping[str, str] | None = None,
                 log_path: str | Path | None = None) -> None:
        self.spec = spec
        self.env = dict(os.environ if env is None else env)
        if log_path is None:
            log_path = Path(tempfile.mkdtemp(prefix='vla_node_')) / f'{spec.name}.log'
        self.log_path = Path(log_path)
        self._proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> NodeProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, 'ab')
        self._proc = subprocess.Popen(
            self.spec.command(), env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output(self, max_chars: int = 4000) -> str:
        """The tail of the node's log (stdout and stderr)."""
        try:
            text = self.log_path.read_text(errors='replace')
        except OSError:
            return ''
        return text[-max_chars:]

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT the process group (a clean rclpy shutdown), then SIGTERM, then SIGKILL."""
        if self._proc is None:
            return None
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self._proc.poll() is not None:
                break
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self._proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        if self._log is not None:
            self._log.close()
            self._log = None
        return self._proc.poll()


class NodeGroup:
    """Several node processes started together and stopped in reverse order."""

    def __init__(self, specs: Sequence[NodeSpec], env: Mapping[str, str] | None = None,
                 log_dir: str | Path | None = None) -> None:
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix='vla_nodes_'))
        self.log_dir = log_dir
        self.processes = [NodeProcess(s, env, log_dir / f'{s.name}.log') for s in specs]

    def start(self) -> NodeGroup:
        for proc in self.processes:
            proc.start()
        return self

    def dead(self) -> list[NodeProcess]:
        return [p for p in self.processes if not p.alive()]

    def stop(self, timeout: float = 10.0) -> None:
        for proc in reversed(self.processes):
            proc.stop(timeout)

    def __enter__(self) -> NodeGroup:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate: Callable[[], bool], timeout: float, poll: Callable[[], None] | None = None,
             interval: float = 0.01) -> bool:
    """Call ``poll`` (e.g. one executor spin) until ``predicate()`` holds or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        if poll is not None:
            poll()
        else:
            time.sleep(interval)
