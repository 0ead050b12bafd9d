from setuptools import find_packages, setup

package_name = 'vla_collect'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'h5py', 'imageio', 'matplotlib', 'tqdm', 'PyYAML',
                      'opencv-python-headless', 'rosbags', 'pyarrow', 'av'],
    zip_safe=False,
    maintainer='vla_ros2 maintainers',
    maintainer_email='maintainers@vla-ros2.dev',
    description='Teleoperation (joystick, keyboard) and the synchronised 30 Hz demonstration recorder writing HDF5 episodes, plus dataset tools.',
    license='Apache-2.0',
    extras_require={
        'test': ['pytest', 'pytest-timeout', 'pillow'],
        # LeRobot's own LeRobotDataset, the reference reader of `vla dataset export --format
        # lerobot` (the export and import need only pyarrow and av).  lerobot 0.4.4, the last
        # release for Python 3.11, pins torch<2.11: install it in a separate venv (as
        # benchmarks/check_lerobot_load.py does), not beside the project's torch.
        'lerobot': ['lerobot>=0.4.4,<0.5'],
    },
    entry_points={
        'console_scripts': [
            'teleop_collector = vla_collect.collector_node:main',
            'joy_teleop = vla_collect.joy_teleop_node:main',
            'keyboard_teleop = vla_collect.keyboard_teleop_node:main',
            'dataset = vla_collect.dataset_cli:main',
        ],
    },
)
