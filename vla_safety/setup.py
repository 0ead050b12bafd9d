from setuptools import find_packages, setup

package_name = 'vla_safety'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy'],
    zip_safe=False,
    maintainer='vla_ros2 maintainers',
    maintainer_email='maintainers@vla-ros2.dev',
    description='Action bounds, joint position/velocity limits, watchdogs, the command gate and a latched emergency stop.',
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'pytest-timeout', 'PyYAML']},
    entry_points={
        'console_scripts': [
            'command_gate = vla_safety.gate_node:main',
            'safety_monitor = vla_safety.monitor_node:main',
        ],
    },
)
