from setuptools import find_packages, setup

package_name = 'vla_control'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'torch', 'ruckig'],
    zip_safe=False,
    maintainer='vla_ros2 maintainers',
    maintainer_email='maintainers@vla-ros2.dev',
    description='The real-time VLA inference controller node that turns camera frames and a language command into JointTrajectory commands.',
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'pytest-timeout', 'safetensors']},
    entry_points={
        'console_scripts': [
            'vla_controller = vla_control.controller_node:main',
        ],
    },
)
