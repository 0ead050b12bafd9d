"""vla_common is the lowest layer: importing any of its modules pulls in no other vla package,
no torch and no MuJoCo."""
import os
import pkgutil
import subprocess
import sys

import vla_common

FORBIDDEN = ('torch', 'mujoco', 'h5py', 'transformers', 'vla_sim', 'vla_safety', 'vla_collect',
             'vla_policy', 'vla_control', 'vla_bringup')


def test_modules_import_nothing_above_the_common_layer():
    modules = ['vla_common'] + [f'vla_common.{m.name}' for m in pkgutil.iter_modules(vla_common.__path__)]
    # a fresh interpreter: this one has imported the whole suite already
    code = (f'import importlib, sys\n'
            f'for name in {modules!r}: importlib.import_module(name)\n'
            f'print(sorted({{m.split(".")[0] for m in sys.modules}} & set({FORBIDDEN!r})))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env=dict(os.environ), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]', f'vla_common imports {out.stdout.strip()}'
