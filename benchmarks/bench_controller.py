"""Controller inference latency (p50/p99) and achieved control rate, closed loop through ROS.

Runs the deploy scenario (sim_node + command_gate + safety_monitor + vla_controller) with an
untrained checkpoint of the chosen preset (latency does not depend on the weights) and a
language command, for ``--minutes``, and aggregates the controller's per-tick latencies and
tick count from its /diagnostics.  Targets (cpu preset, 2 CPU cores): p99 < 20 ms and
>= 29.5 Hz achieved.

    ./run.sh bench bench_controller.py                 # cpu preset, 5 minutes
    ./run.sh bench bench_controller.py --preset clip-bert --device cuda --minutes 2
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_checkpoint(preset_name: str, out: Path, image_size: int) -> Path:
    """An untrained checkpoint of ``preset_name`` for the simulated arm."""
    from vla_policy import VLAPolicy, preset
    from vla_sim.env import JOINT_NAMES
    names = list(JOINT_NAMES)
    overrides = {}
    if preset_name == 'clip-bert' and not (os.environ.get('VLA_CLIP_PATH')
                                           and os.environ.get('VLA_BERT_PATH')):
        # No local CLIP/BERT weights (no downloads here): the same architecture, random weights.
        print('clip-bert: VLA_CLIP_PATH/VLA_BERT_PATH not set, timing ViT-B/32 + BERT-base '
              'with random weights', file=sys.stderr)
        overrides = dict(vision_model_config=dict(hidden_size=768, intermediate_size=3072,
                                                  num_hidden_layers=12, num_attention_heads=12,
                                                  image_size=224, patch_size=32),
                         language_model_config=dict(hidden_size=768, num_hidden_layers=12,
                                                    num_attention_heads=12, intermediate_size=3072))
    cfg = preset(preset_name, joint_names=names, action_names=names, state_dim=len(names),
                 action_dim=len(names), source_image_size=[image_size, image_size], **overrides)
    policy = VLAPolicy(cfg)
    n = len(names)
    policy.set_normalization({'state': {'mean': np.zeros(n), 'std': np.ones(n)},
                              'action': {'mean': np.zeros(n), 'std': np.full(n, 0.05)}})
    return policy.save_pretrained(out, metadata={'note': f'untrained {preset_name} for benchmarks'})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=5.0, help='measurement time')
    parser.add_argument('--preset', default='cpu', help='model preset: cpu, clip-bert, tiny')
    parser.add_argument('--checkpoint', type=Path, help='use this checkpoint instead')
    parser.add_argument('--device', default='cpu', help='torch device of the controller')
    parser.add_argument('--image-size', type=int, default=224, help='camera image size')
    parser.add_argument('--warmup', type=float, default=10.0, help='seconds ignored at the start')
    args = parser.parse_args(argv)

    from vla_sim.launching import NodeGroup, isolated_ros_env
    env = isolated_ros_env()
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    from diagnostic_msgs.msg import DiagnosticArray
    from tqdm import tqdm

    from vla_bringup.scenarios import build_scenario
    from vla_safety.testing import GraphProbe

    checkpoint = args.checkpoint or make_checkpoint(
        args.preset, Path(tempfile.mkdtemp(prefix='bench_ckpt_')) / 'checkpoint', args.image_size)
    specs = build_scenario('deploy', {'checkpoint': str(checkpoint), 'command': 'pick up the red cube'})
    specs = [dataclasses.replace(s, parameters={**s.parameters, 'image_size': args.image_size})
             if s.name == 'sim_node' else
             dataclasses.replace(s, parameters={**s.parameters, 'device': args.device})
             if s.name == 'vla_controller' else s for s in specs]
    samples: list[float] = []
    reports: list[tuple[float, dict]] = []

    def on_diag(msg) -> None:
        for status in msg.status:
            if status.name == 'vla_control: vla_controller':
                values = {kv.key: kv.value for kv in status.values}
                reports.append((time.monotonic(), values))
                if values.get('latency_samples_ms') and values.get('state') == 'active':
                    samples.extend(float(x) for x in values['latency_samples_ms'].split(','))

    with NodeGroup(specs, env=env) as group:
        probe = GraphProbe('bench_controller')
        try:
            probe.subscribe(DiagnosticArray, '/diagnostics', 50, on_message=on_diag)
            deadline = time.monotonic() + 120
            while not any(v.get('state') == 'active' for _, v in reports):
                if time.monotonic() > deadline or group.dead():
                    sys.exit('the controller did not start acting:\n'
                             + '\n'.join(p.output() for p in group.processes))
                time.sleep(0.2)
            time.sleep(args.warmup)
            samples.clear()
            start_t, start_v = reports[-1]
            total = args.minutes * 60
            for _ in tqdm(range(int(total)), desc=f'{args.preset} controller', unit='s'):
                time.sleep(1.0)
                if group.dead():
                    sys.exit('a node died:\n' + '\n'.join(p.output() for p in group.dead()))
            end_t, end_v = reports[-1]
        finally:
            probe.close()
    ticks = int(end_v['ticks']) - int(start_v['ticks'])
    overruns = int(end_v['overruns']) - int(start_v['overruns'])
    rate = ticks / (end_t - start_t)
    lat = np.asarray(samples)
    print(f'{args.preset} preset on {args.device}, image {args.image_size} px, '
          f'{(end_t - start_t) / 60:.1f} min closed loop with the simulator: inference latency '
          f'p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms, '
          f'max {lat.max():.2f} ms over {lat.size} ticks; achieved {rate:.2f} Hz '
          f'(nominal {end_v["control_rate_hz"]} Hz), overruns {overruns}, '
          f'final state {end_v["state"]} {end_v["hold_reason"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
