"""The test tree as pytest collects it: one session over every package's test/ folder."""
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ('vla_common', 'vla_sim', 'vla_safety', 'vla_collect', 'vla_policy', 'vla_control', 'vla_bringup')


def test_test_modules_have_unique_basenames():
    """The test folders are not packages, so pytest imports each test module by its basename:
    two test_x.py in different packages stop the whole collection ('import file mismatch')."""
    names = Counter(p.name for pkg in PACKAGES for p in (ROOT / pkg / 'test').glob('*.py')
                    if p.name != 'conftest.py')
    assert not [n for n, c in names.items() if c > 1], {n: c for n, c in names.items() if c > 1}
