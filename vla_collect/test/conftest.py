"""Fixtures for vla_collect's tests."""
from __future__ import annotations

from pathlib import Path

import pytest
from collect_test_helpers import write_episode


@pytest.fixture
def episode_dir(tmp_path: Path) -> Path:
    """A directory with three valid episodes (0 and 2 successful)."""
    directory = tmp_path / 'data'
    for i in range(3):
        write_episode(directory / f'episode_{i:06d}.hdf5', steps=5 + i, success=i != 1,
                      command=['pick red', 'pick green', 'pick red'][i])
    return directory
