"""Controller latency (p50/p99 per tick and per inference), achieved rate, overruns and CPU,
closed loop through ROS with the simulator running beside it; the old per-tick cost (encode
every frame) and the new one (encode only when a chunk is predicted) side by side in one run.

Runs the deploy scenario (sim_node in real time + command_gate + safety_monitor +
vla_controller) with an untrained checkpoint of the chosen preset shaped as the demo trains it
(``cpu`` preset, front + wrist camera, 224 px images; latency does not depend on the weights)
and a language command.  After a warm-up it alternates ``--segment``-second segments of the
two modes in the same controller process (the run-time parameter ``encode_every_tick``), so
the machine's other load hits both alike, and aggregates the controller's /diagnostics:
per-tick latency samples (every acting tick; most are served from the action queue),
per-inference samples (ticks that ran the model), ticks, overruns, and the CPU time of the
controller and simulator processes.  Targets (issue 11, cpu preset, 2 AVX2 cores, two
cameras): p99 < 20 ms and >= 29.5 Hz achieved.  The node processes run with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` unless ``--isa default``.

    ./run.sh bench bench_controller.py                          # 4 min, old vs new
    ./run.sh bench bench_controller.py --modes new --minutes 5  # the new path only
    ./run.sh bench bench_controller.py --preset clip-bert --device cuda --cameras none

It ends with ``select_action`` timed alone in the bench process (``--offline``), the two modes
(traced, as the controller runs them) and the eager model called in turn, for the cost without
ROS around it and what tracing saves.

Asynchronous inference (issue 15): ``--inference async`` runs the model beside the 30 Hz tick
(``--stitching``, ``--plan-points``); the commands table then gives, per mode, the rate of
commands the controller published on /vla/command, the hold ticks after the warm-up (ticks
without an action: the plan ran out), the worker's inference p50/p99 (its last 300), and the
largest change of commanded joint velocity between consecutive commands (jerk: first points,
velocity = step / control period) of the controller's requests and of the gate's output, set
against the gate's ``max_acceleration`` x one tick and ``max_velocity``::

    ./run.sh bench bench_controller.py --preset clip-bert --cameras none --inference async \
        --modes new --minutes 2 --offline 0 [--max-acceleration gate]

``--max-acceleration gate`` sets the controller's ``max_acceleration`` to the gate's, so that
the commanded path is smoothed (vla_control.smoothing) within the limit the jerk is set against.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MODES = {'old': True, 'new': False, 'eager': False}  # mode -> encode_every_tick
LABELS = {'old': 'encode every tick (before)', 'new': 'encode on prediction (now)',
          'eager': 'on prediction, eager PyTorch'}


def make_checkpoint(preset_name: str, out: Path, image_size: int, cameras: list[str]) -> Path:
    """An untrained checkpoint of ``preset_name`` for the simulated arm, acting around home."""
    from vla_policy import VLAPolicy, preset
    from vla_sim.env import HOME_GRIPPER, HOME_QPOS, JOINT_NAMES
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
                 action_dim=len(names), source_image_size=[image_size, image_size],
                 extra_cameras=list(cameras), **overrides)
    policy = VLAPolicy(cfg)
    n = len(names)
    home = np.append(HOME_QPOS, HOME_GRIPPER)[:n]
    policy.set_normalization({'state': {'mean': home, 'std': np.ones(n)},
                              'action': {'mean': home, 'std': np.full(n, 0.02)}})
    return policy.save_pretrained(out, metadata={'note': f'untrained {preset_name} for benchmarks'})


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), 0 when it is gone."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
        fields = stat[stat.rindex(')') + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError):
        return 0.0


def max_jerk(stamped: list, period: float) -> np.ndarray | None:
    """Per joint, the largest change of commanded velocity between commands of consecutive
    ticks (their first points; velocity = step / ``period``), from ``(arrival, msg)`` pairs:
    only steps between commands stamped (header, else arrival) 0.5 to 1.5 ticks apart count,
    so a hold's silence is not read as one long step; None when there is no such triple."""
    if len(stamped) < 3:
        return None
    times = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 or t for t, m in stamped])
    positions = np.array([m.points[0].positions for _, m in stamped], dtype=np.float64)
    gaps = np.diff(times) / period
    tick = (gaps > 0.5) & (gaps < 1.5)
    velocity = np.diff(positions, axis=0) / period
    both = tick[1:] & tick[:-1]
    if not both.any():
        return None
    return np.abs(np.diff(velocity, axis=0))[both].max(axis=0)


def gate_limits() -> tuple[np.ndarray, np.ndarray]:
    """The command gate's max_acceleration and max_velocity from the deploy scenario's
    safety.yaml (the node's section)."""
    import yaml

    from vla_bringup.scenarios import config_file
    gate = yaml.safe_load(Path(config_file('safety.yaml')).read_text())['command_gate']['ros__parameters']
    return (np.asarray(gate['max_acceleration'], dtype=np.float64),
            np.asarray(gate['max_velocity'], dtype=np.float64))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float('nan')


def offline(checkpoint: Path, calls: int, modes: list[str], threads: int) -> None:
    """select_action alone, in this process: the modes' policies called in turn on the same
    224 px frames (so the machine's other load hits them alike); per call and per inference."""
    import torch

    from vla_policy import VLAPolicy
    torch.set_num_threads(threads)
    policies = {}
    for mode in [*modes, 'eager']:  # the controller's (traced) modes, and the eager model beside
        policies[mode] = VLAPolicy.from_pretrained(checkpoint)
        policies[mode].encode_every_frame = MODES[mode]
        if mode != 'eager':
            policies[mode].trace_for_inference()  # as the controller loads it
    modes = [*modes, 'eager']
    cfg = policies[modes[0]].config
    rng = np.random.default_rng(0)
    size = cfg.source_image_size or [224, 224]
    frames = [{'image': rng.integers(0, 255, (*size, 3), dtype=np.uint8),
               **{f'image_{c}': rng.integers(0, 255, (*size, 3), dtype=np.uint8)
                  for c in cfg.extra_cameras},
               'joint_positions': np.zeros(cfg.state_dim, np.float32),
               'instruction': 'pick up the red cube'} for _ in range(16)]
    times = {m: ([], []) for m in modes}
    for i in range(calls + 16):
        for mode, policy in policies.items():
            start = time.perf_counter()
            policy.select_action(frames[i % len(frames)])
            ms = (time.perf_counter() - start) * 1e3
            if i >= 16:  # warm-up
                times[mode][0].append(ms)
                if policy.predicted_chunk:
                    times[mode][1].append(ms)
    print(f'\nselect_action alone ({calls} calls per mode, interleaved, {threads} torch thread(s), '
          f'cameras front+{"+".join(cfg.extra_cameras) or "none"}, {size[0]} px frames):')
    for mode in modes:
        ticks, infer = times[mode]
        print(f'  {LABELS[mode]:<28} per call p50 {pct(ticks, 50):6.2f} p99 {pct(ticks, 99):6.2f} ms, '
              f'mean {np.mean(ticks):6.2f} ms; per inference ({len(infer)}) p50 {pct(infer, 50):6.2f} '
              f'p99 {pct(infer, 99):6.2f} ms')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=4.0, help='measurement time, all modes')
    parser.add_argument('--segment', type=float, default=30.0, help='seconds per segment of a mode')
    parser.add_argument('--modes', default='old,new', help='old,new | new | old')
    parser.add_argument('--preset', default='cpu', help='model preset: cpu, clip-bert, tiny')
    parser.add_argument('--cameras', default='wrist', help="extra cameras ('none' = front only)")
    parser.add_argument('--checkpoint', type=Path, help='use this checkpoint instead')
    parser.add_argument('--device', default='cpu', help='torch device of the controller')
    parser.add_argument('--image-size', type=int, default=224, help='camera image size')
    parser.add_argument('--warmup', type=float, default=10.0, help='seconds ignored at the start')
    parser.add_argument('--isa', default='avx2', choices=['avx2', 'default'],
                        help='restrict the nodes\' torch kernels to AVX2 (issue 11) or not')
    parser.add_argument('--inference', default='sync', choices=['sync', 'async'],
                        help='the controller\'s inference parameter')
    parser.add_argument('--stitching', default='crossfade', help='async: chunk stitching')
    parser.add_argument('--threads', type=int, default=0,
                        help='the controller\'s num_threads (0: controller.yaml\'s)')
    parser.add_argument('--plan-points', type=int, default=0,
                        help='the controller\'s plan_points (extra trajectory points)')
    parser.add_argument('--max-acceleration', default=None, metavar='A',
                        help="the controller's max_acceleration: comma-separated values (one, or "
                             "one per joint), 'gate' = the command gate's (safety.yaml), 0 = off; "
                             "default: controller.yaml's")
    parser.add_argument('--offline', type=int, default=400, metavar='CALLS',
                        help='also time select_action alone for CALLS calls per mode (0 = skip)')
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(',') if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f'--modes takes old and/or new, got {args.modes!r}')
    cameras = [] if args.cameras in ('', 'none') else args.cameras.split(',')
    if args.isa == 'avx2':  # before torch is imported: this process times select_action too
        os.environ.update(ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2')

    from vla_common.launching import NodeGroup, isolated_ros_env
    env = isolated_ros_env()
    if args.isa == 'avx2':
        env.update(ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2')
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    import subprocess
    capability = subprocess.run(
        [sys.executable, '-c', 'import torch; print(torch.backends.cpu.get_cpu_capability())'],
        env=env, capture_output=True, text=True).stdout.strip()
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    from trajectory_msgs.msg import JointTrajectory

    from vla_bringup.scenarios import REQUEST_TOPIC, ROBOT_COMMAND_TOPIC, build_scenario
    from vla_common.testing import GraphProbe

    checkpoint = args.checkpoint or make_checkpoint(
        args.preset, Path(tempfile.mkdtemp(prefix='bench_ckpt_')) / 'checkpoint', args.image_size,
        cameras)
    accel = None
    if args.max_acceleration == 'gate':
        accel = gate_limits()[0].tolist()
    elif args.max_acceleration is not None:
        accel = [float(v) for v in args.max_acceleration.split(',')]
    specs = build_scenario('deploy', {'checkpoint': str(checkpoint), 'command': 'pick up the red cube'})
    specs = [dataclasses.replace(s, parameters={**s.parameters, 'image_size': args.image_size})
             if s.name == 'sim_node' else
             dataclasses.replace(s, parameters={**s.parameters, 'device': args.device,
                                                'encode_every_tick': MODES[modes[0]],
                                                'inference': args.inference,
                                                'stitching': args.stitching,
                                                'plan_points': args.plan_points,
                                                **({'max_acceleration': accel}
                                                   if accel is not None else {}),
                                                **({'num_threads': args.threads}
                                                   if args.threads > 0 else {})})
             if s.name == 'vla_controller' else s for s in specs]
    import yaml

    from vla_bringup.scenarios import config_file
    period = 1.0 / float(yaml.safe_load(Path(config_file('controller.yaml')).read_text())
                         ['vla_controller']['ros__parameters']['control_rate'])
    lock = threading.Lock()
    reports: list[tuple[float, dict]] = []

    def on_diag(msg) -> None:
        for status in msg.status:
            if status.name == 'vla_control: vla_controller':
                with lock:
                    reports.append((time.monotonic(), {kv.key: kv.value for kv in status.values}))

    stats = {m: dict(ticks=[], infer=[], overruns=0, n_ticks=0, seconds=0.0, ctl_cpu=0.0,
                     sim_cpu=0.0, holds=set(), commands=0, hold_ticks=0, jerk_request=[],
                     jerk_gate=[], async_p50=[], async_p99=[], points=set()) for m in modes}
    with NodeGroup(specs, env=env) as group:
        pids = {p.spec.name: p.pid for p in group.processes}
        probe = GraphProbe('bench_controller')
        try:
            probe.subscribe(DiagnosticArray, '/diagnostics', 50, on_message=on_diag)
            probe.subscribe(JointTrajectory, REQUEST_TOPIC, 50)
            probe.subscribe(JointTrajectory, ROBOT_COMMAND_TOPIC, 50)
            client = probe.node.create_client(SetParameters, '/vla_controller/set_parameters')
            deadline = time.monotonic() + 300  # a big model loads and traces for a while
            while not any(v.get('state') == 'active' for _, v in list(reports)):
                if time.monotonic() > deadline or group.dead():
                    sys.exit('the controller did not start acting:\n'
                             + '\n'.join(p.output() for p in group.processes))
                time.sleep(0.2)
            if not client.wait_for_service(timeout_sec=10.0):
                sys.exit('no /vla_controller/set_parameters service')
            time.sleep(args.warmup)
            # loading a big model can starve the simulator on a busy machine long enough for the
            # monitor to latch a stop (silent /joint_states): clear it once, as an operator would
            from std_srvs.srv import Trigger
            reset = probe.call(Trigger, '/emergency_stop/reset', Trigger.Request(), 10.0)
            if reset is not None and reset.success:
                print(f'e-stop reset after start-up: {reset.message}', file=sys.stderr)
                time.sleep(2.0)
            segments = max(len(modes), int(round(args.minutes * 60 / args.segment)))
            with lock:
                start_report = reports[-1][1]  # after the warm-up: hold ticks from here on
            for i in range(segments):
                mode = modes[i % len(modes)]
                request = SetParameters.Request(parameters=[Parameter(
                    'encode_every_tick', Parameter.Type.BOOL, MODES[mode]).to_parameter_msg()])
                future = client.call_async(request)
                t0 = time.monotonic()
                while not future.done() and time.monotonic() - t0 < 10.0:
                    time.sleep(0.01)
                if not future.done() or not future.result().results[0].successful:
                    sys.exit(f'could not set encode_every_tick for {mode}')
                # the first report after the switch mixes both modes: skip it
                time.sleep(1.05)
                begin = time.monotonic()
                cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
                with lock:
                    first = reports[-1][1]
                print(f'segment {i + 1}/{segments}: {LABELS[mode]}', file=sys.stderr, flush=True)
                time.sleep(args.segment)
                if group.dead():
                    sys.exit('a node died:\n' + '\n'.join(p.output() for p in group.dead()))
                end = time.monotonic()
                cpu1 = {n: cpu_seconds(pid) for n, pid in pids.items()}
                with lock:
                    window = [v for t, v in reports if begin <= t <= end]
                    last = reports[-1][1]
                s = stats[mode]
                for values in window:
                    if values.get('encode_every_tick') != str(MODES[mode]).lower():
                        continue
                    if values.get('state') != 'active':
                        s['holds'].add(values.get('hold_reason', '').split(';')[0])
                    for key, out in (('latency_samples_ms', 'ticks'), ('inference_samples_ms', 'infer')):
                        if values.get(key):
                            s[out].extend(float(x) for x in values[key].split(','))
                requests = [(t, m) for t, m in probe.stamped(REQUEST_TOPIC) if begin <= t <= end]
                forwarded = [(t, m) for t, m in probe.stamped(ROBOT_COMMAND_TOPIC) if begin <= t <= end]
                probe.clear(REQUEST_TOPIC)
                probe.clear(ROBOT_COMMAND_TOPIC)
                s['commands'] += len(requests)
                s['points'].update(len(m.points) for _, m in requests)
                for key, messages in (('jerk_request', requests), ('jerk_gate', forwarded)):
                    jerk = max_jerk(messages, period)
                    if jerk is not None:
                        s[key].append(jerk)
                s['hold_ticks'] += (int(last['ticks']) - int(last['actions'])) - (
                    int(first['ticks']) - int(first['actions']))
                if 'async_inference_p50_ms' in last:
                    s['async_p50'].append(float(last['async_inference_p50_ms']))
                    s['async_p99'].append(float(last['async_inference_p99_ms']))
                s['overruns'] += int(last['overruns']) - int(first['overruns'])
                s['n_ticks'] += int(last['ticks']) - int(first['ticks'])
                s['seconds'] += end - begin
                s['ctl_cpu'] += cpu1['vla_controller'] - cpu0['vla_controller']
                s['sim_cpu'] += cpu1['sim_node'] - cpu0['sim_node']
            final = reports[-1][1]
            held_after_start = (int(final['ticks']) - int(final['actions'])) - (
                int(start_report['ticks']) - int(start_report['actions']))
        finally:
            probe.close()

    print(f'\n{args.preset} preset, cameras front+{"+".join(cameras) or "none"}, {args.device}, '
          f'image {args.image_size} px, torch CPU capability {capability} '
          f'(--isa {args.isa}), {os.cpu_count()} cores, {final.get("num_threads")} torch thread(s), '
          f'sim_node in real time beside it; {args.minutes:g} min in {args.segment:g} s segments '
          f'alternating {" / ".join(modes)}')
    header = (f'{"mode":<28} {"ticks":>6} {"Hz":>6} {"tick p50":>9} {"tick p99":>9} '
              f'{"tick max":>9} {"infer n":>7} {"inf p50":>8} {"inf p99":>8} {"overruns":>8} '
              f'{"/min":>6} {"ctl CPU":>8} {"sim CPU":>8}')
    print(header)
    for mode in modes:
        s = stats[mode]
        ticks, infer = s['ticks'], s['infer']
        minutes = s['seconds'] / 60
        print(f'{LABELS[mode]:<28} {len(ticks):>6} {s["n_ticks"] / max(s["seconds"], 1e-9):>6.2f} '
              f'{pct(ticks, 50):>9.2f} {pct(ticks, 99):>9.2f} '
              f'{max(ticks) if ticks else float("nan"):>9.2f} {len(infer):>7} '
              f'{pct(infer, 50):>8.2f} {pct(infer, 99):>8.2f} {s["overruns"]:>8} '
              f'{s["overruns"] / max(minutes, 1e-9):>6.2f} '
              f'{100 * s["ctl_cpu"] / max(s["seconds"], 1e-9):>7.1f}% '
              f'{100 * s["sim_cpu"] / max(s["seconds"], 1e-9):>7.1f}%')
        if s['holds']:
            print(f'  ({LABELS[mode]}: some reports were holding: {sorted(s["holds"])})')
    print('latencies in ms; tick = every acting tick (from the start of the tick to the action), '
          'infer = ticks that ran the model; CPU = share of one core')
    amax, vmax = gate_limits()
    print(f'\ncommands ({args.inference} inference'
          + (f', {args.stitching} stitching' if args.inference == 'async' else '')
          + f', plan_points {args.plan_points}, controller max_acceleration '
          + f'{accel if accel is not None else "from controller.yaml"}); jerk = max |change of commanded joint velocity| '
          f'between consecutive commands, rad/s (gripper m/s) per tick; the gate\'s '
          f'max_acceleration x one tick = {np.round(amax * period, 3).tolist()}, '
          f'max_velocity = {vmax.tolist()}')
    print(f'{"mode":<28} {"published Hz":>12} {"hold ticks":>10} {"points":>7} '
          f'{"async p50":>9} {"async p99":>9} {"jerk req":>9} {"jerk gate":>9} '
          f'{"jerk/(amax*dt)":>14}')
    for mode in modes:
        s = stats[mode]
        n = len(amax)
        request = np.max(np.stack(s['jerk_request']), axis=0) if s['jerk_request'] else np.full(n, np.nan)
        gate = np.max(np.stack(s['jerk_gate']), axis=0) if s['jerk_gate'] else np.full(n, np.nan)
        print(f'{LABELS[mode]:<28} {s["commands"] / max(s["seconds"], 1e-9):>12.2f} '
              f'{s["hold_ticks"]:>10} {",".join(map(str, sorted(s["points"]))):>7} '
              f'{np.median(s["async_p50"]) if s["async_p50"] else float("nan"):>9.1f} '
              f'{max(s["async_p99"]) if s["async_p99"] else float("nan"):>9.1f} '
              f'{request.max():>9.3f} {gate.max():>9.3f} {(gate / (amax * period)).max():>14.2f}')
        print(f'  per joint: request {np.round(request, 3).tolist()}, gate {np.round(gate, 3).tolist()}')
    print(f'hold ticks from the end of the warm-up to the end, all modes and the 1 s gaps '
          f'between segments included: {held_after_start}')
    print('(hold ticks: ticks without an action after the warm-up; async p50: median of the '
          'per-segment p50s, p99: the largest per-segment p99, each over the worker\'s last 300 '
          'inferences)')
    if args.offline > 0 and args.device == 'cpu':
        offline(checkpoint, args.offline, modes, int(final.get('num_threads') or 1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
