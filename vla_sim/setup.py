from setuptools import find_packages, setup

package_name = 'vla_sim'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['assets/*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'mujoco'],
    zip_safe=False,
    maintainer='vla_ros2 maintainers',
    maintainer_email='maintainers@vla-ros2.dev',
    description='MuJoCo simulated 6-DOF arm with camera, language-conditioned tasks, a scripted expert and a ROS node with the interface of a real robot.',
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'pytest-timeout', 'h5py']},
    entry_points={
        'console_scripts': [
            'sim_node = vla_sim.sim_node:main',
            'scripted_expert = vla_sim.expert_node:main',
        ],
    },
)
