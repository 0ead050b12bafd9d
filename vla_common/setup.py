from glob import glob

from setuptools import find_packages, setup

package_name = 'vla_common'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),  # robot.yaml
    ],
    install_requires=['setuptools', 'numpy', 'imageio', 'PyYAML'],
    zip_safe=False,
    maintainer='vla_ros2 maintainers',
    maintainer_email='maintainers@vla-ros2.dev',
    description='What every vla_ros2 package shares (the lowest layer, rclpy and messages only): the node '
                'process launcher, QoS profiles, message conversions, the /diagnostics helper, the robot description (robot.yaml), success-rate statistics, test probes '
                'and atomic file writes.',
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'pytest-timeout', 'pillow']},
)
