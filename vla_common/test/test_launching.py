"""Private ROS graphs: concurrent runs on one machine never share a ROS_DOMAIN_ID."""
import os
import subprocess
import sys

from vla_common import launching
from vla_common.launching import (DOMAIN_IDS, domain_held, isolated_ros_env, release_domain_id,
                                  reserve_domain_id)


def test_domain_ids_are_exclusive_across_processes_and_given_back(tmp_path):
    mine = {reserve_domain_id(tmp_path) for _ in range(5)}
    assert len(mine) == 5 and mine <= set(DOMAIN_IDS)
    # another process sees those five as taken
    code = ('import sys; from vla_common.launching import reserve_domain_id as r; '
            f'print(sorted(r({str(tmp_path)!r}) for _ in range(20)))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         env=dict(os.environ))
    theirs = set(eval(out.stdout))
    assert len(theirs) == 20 and not theirs & mine
    for domain_id in mine:
        release_domain_id(domain_id)
    assert reserve_domain_id(tmp_path) in set(DOMAIN_IDS)


def test_isolated_env_holds_its_domain_until_the_group_ends():
    env = isolated_ros_env()
    domain_id = int(env['ROS_DOMAIN_ID'])
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    with domain_held(env):
        assert domain_id != int(isolated_ros_env()['ROS_DOMAIN_ID'])
    assert domain_id not in launching._DOMAIN_LOCKS
