"""Fixtures of the vla_policy tests: tiny HDF5 datasets written with the real EpisodeWriter."""
import pytest
import torch

from vla_policy.testing import write_tiny_dataset


@pytest.fixture(autouse=True)
def _few_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; tiny models gain nothing from more
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_data(tmp_path):
    """3 episodes x 20 steps, 32x32 images, 7 joints, 2 instructions."""
    directory = tmp_path / 'data'
    write_tiny_dataset(directory, episodes=3, steps=20)
    return directory


@pytest.fixture
def tiny_data_4d(tmp_path):
    """A 3-joint robot with 4-dim actions and 24x40 images: nothing is tied to the simulated arm."""
    directory = tmp_path / 'data4'
    write_tiny_dataset(directory, episodes=3, steps=20, image_size=24, joint_names=['a', 'b', 'c'],
                       action_names=['a', 'b', 'c', 'grip'])
    return directory
