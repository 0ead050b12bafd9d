import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'vla_bringup'


def files(pattern: str) -> list[str]:
    # existing files only: a symlinked build keeps links to files that have since moved
    return [path for path in glob(pattern) if os.path.isfile(path)]


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['templates/*.j2']},  # the report's Markdown/HTML templates
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', files('launch/*.launch.py')),
        ('share/' + package_name + '/config', files('config/*.yaml')),
    ],
    install_requires=['setuptools', 'numpy', 'PyYAML', 'matplotlib', 'tqdm', 'imageio', 'opencv-python-headless',
                      'jinja2'],
    zip_safe=False,
    maintainer='vla_ros2 maintainers',
    maintainer_email='maintainers@vla-ros2.dev',
    description='Launch files, YAML configuration and the vla command that runs whole scenarios (sim, teleop, collect, train, deploy, evaluate, demo).',
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'pytest-timeout', 'pillow']},
    entry_points={
        'console_scripts': [
            'vla = vla_bringup.cli:main',
        ],
    },
)
