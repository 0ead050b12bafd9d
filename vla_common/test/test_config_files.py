"""A package's config/*.yaml: the installed share directory, then the source tree."""
from pathlib import Path

import pytest

from vla_common import config_files
from vla_common.config_files import config_dirs, config_file

REPO = Path(__file__).resolve().parents[2]


def test_the_source_tree_is_the_last_place_looked_in():
    assert config_dirs('vla_bringup')[-1] == REPO / 'vla_bringup' / 'config'
    assert config_file('vla_common', 'robot.yaml').read_text() == \
        (REPO / 'vla_common' / 'config' / 'robot.yaml').read_text()
    assert config_file('vla_bringup', 'sim.yaml').name == 'sim.yaml'


def test_without_an_ament_index_the_source_tree_is_used(monkeypatch):
    """AMENT_PREFIX_PATH unset: ament_index_python raises an OSError, which is not fatal."""
    monkeypatch.delenv('AMENT_PREFIX_PATH', raising=False)
    assert config_dirs('vla_bringup') == [config_files.SOURCE_ROOT / 'vla_bringup' / 'config']
    assert config_file('vla_bringup', 'safety.yaml') == REPO / 'vla_bringup' / 'config' / 'safety.yaml'


def test_a_missing_file_names_where_it_was_looked_for():
    with pytest.raises(FileNotFoundError, match="'nope.yaml' of vla_bringup not found in .*vla_bringup/config"):
        config_file('vla_bringup', 'nope.yaml')
