"""Where does a policy's workbench episode break? A stage funnel per task, on held-out layouts.

    python benchmarks/bench_workbench_probe.py --checkpoint RUN/checkpoint [--tasks workbench]
        [--episodes 20] [--seed 1000] [--json OUT.json]

A success rate says that a task failed, not where. This probe runs each workbench task ROS-free in
the simulator (as ``vla_policy.evaluate``: seeds 1000+, clear of the demonstrations' 0..; one torch
thread) and records per episode, from the simulator's ground truth, how far it got:

- reach_marker: closest approach of the tool-centre point to the marker (within 5 / 2 / 1 cm);
- push_to_goal: the tool at the puck (horizontally within 1 cm of its rim), the puck moved (> 1 cm),
  the puck brought closer to the goal (> 2 cm), success (within 2 cm, at rest);
- press_button: the tool over the cap (horizontally within the cap's 1.2 cm radius), the cap
  touched, pressed (>= 8 mm);
- open_drawer: the tool behind the handle bar (within 2 cm of where the scripted expert hooks it:
  the gap behind the bar), the drawer moved (> 1 cm), opened (>= 6 cm);
- insert_peg: the tool at the grasp (within 2 cm of where the expert grasps the peg, 1.5 cm above
  its centre), the peg lifted (> 1 cm), carried over the hole (axis within 1 cm), inserted.

Each stage is counted over the episodes and the per-episode distances are kept (``--json``), with
their medians printed: "press_button: over the cap 0/20, cap touched 0/20, success 0/20; median
tool_to_cap_xy_cm 5.23" says the policy does not find the button, not that it cannot press it.
Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

CM = 100.0


def _pos(state: dict, name: str) -> np.ndarray:
    return np.asarray(state['objects'][name]['pos'], dtype=np.float64)


class Tracker:
    """Running minima and maxima of an episode's named distances (cm) and flags."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def low(self, name: str, value: float) -> None:
        self.values[name] = min(self.values.get(name, np.inf), float(value))

    def high(self, name: str, value: float) -> None:
        self.values[name] = max(self.values.get(name, -np.inf), float(value))


def _reach(state: dict, start: dict, t: Tracker) -> None:
    from vla_sim import workbench as wb
    t.low('closest_cm', CM * wb.marker_distance(state))


def _push(state: dict, start: dict, t: Tracker) -> None:
    from vla_sim import workbench as wb
    ee, puck = np.asarray(state['ee_pos'], dtype=np.float64), _pos(state, 'puck')
    t.low('tool_to_rim_cm', CM * max(0.0, float(np.linalg.norm(ee[:2] - puck[:2])) - wb.PUCK_RADIUS))
    t.high('puck_moved_cm', CM * float(np.linalg.norm(puck[:2] - _pos(start, 'puck')[:2])))
    t.high('goal_gain_cm', CM * (wb.goal_distance(start) - wb.goal_distance(state)))
    t.values['final_goal_cm'] = CM * wb.goal_distance(state)


def _press(state: dict, start: dict, t: Tracker) -> None:
    from vla_sim import workbench as wb
    ee, cap = np.asarray(state['ee_pos'], dtype=np.float64), _pos(state, 'button')
    t.low('tool_to_cap_xy_cm', CM * float(np.linalg.norm(ee[:2] - cap[:2])))
    t.high('touched', float(bool(state.get('contacts', {}).get('button'))))
    t.high('depth_mm', 1000.0 * wb.button_depth(state))


def _open(state: dict, start: dict, t: Tracker) -> None:
    from vla_sim import workbench as wb
    from vla_sim.workbench_expert import FINGERTIP_BELOW_TCP
    ee, gap = np.asarray(state['ee_pos'], dtype=np.float64), _pos(state, 'drawer')
    # where the expert puts the tool: in the gap behind the handle bar, fingertips below its axis
    gap = gap + (0.5 * sum(wb.HANDLE_GAP), 0.0, 0.0)
    gap[2] = wb.HANDLE_HEIGHT - 0.02 + FINGERTIP_BELOW_TCP
    t.low('tool_to_gap_cm', CM * float(np.linalg.norm(ee - gap)))
    t.high('opening_cm', CM * wb.drawer_opening(state))


def _insert(state: dict, start: dict, t: Tracker) -> None:
    from vla_sim import workbench as wb
    from vla_sim.workbench_expert import FINGERTIP_BELOW_TCP
    ee, peg = np.asarray(state['ee_pos'], dtype=np.float64), _pos(state, 'peg')
    grasp = peg + (0.0, 0.0, wb.PEG_HALF_HEIGHT - FINGERTIP_BELOW_TCP)  # where the expert grasps it
    t.low('tool_to_grasp_cm', CM * float(np.linalg.norm(ee - grasp)))
    lift = CM * float(peg[2] - wb.PEG_HALF_HEIGHT)
    t.high('lift_cm', lift)
    if lift > 1.0:  # only a carried peg's offset from the hole says anything
        t.low('carried_offset_cm', CM * wb.peg_insertion(state)[0])


#: task -> (per-step update, [(stage label, test on the episode's values)]); the last stage is success
STAGES: dict[str, tuple[Callable, list[tuple[str, Callable[[dict], bool]]]]] = {
    'reach_marker': (_reach, [('within 5 cm', lambda v: v['closest_cm'] < 5.0),
                              ('within 2 cm', lambda v: v['closest_cm'] < 2.0)]),
    'push_to_goal': (_push, [('at the puck', lambda v: v['tool_to_rim_cm'] < 1.0),
                             ('puck moved', lambda v: v['puck_moved_cm'] > 1.0),
                             ('puck 2 cm closer to the goal', lambda v: v['goal_gain_cm'] > 2.0)]),
    'press_button': (_press, [('over the cap', lambda v: v['tool_to_cap_xy_cm'] < 1.2),
                              ('cap touched', lambda v: v['touched'] > 0)]),
    'open_drawer': (_open, [('behind the handle', lambda v: v['tool_to_gap_cm'] < 2.0),
                            ('drawer moved', lambda v: v['opening_cm'] > 1.0)]),
    'insert_peg': (_insert, [('at the grasp', lambda v: v['tool_to_grasp_cm'] < 2.0),
                             ('peg lifted', lambda v: v['lift_cm'] > 1.0),
                             ('over the hole', lambda v: v.get('carried_offset_cm', np.inf) < 1.0)]),
}
#: the distance whose median the summary line prints per task
HEADLINE = {'reach_marker': 'closest_cm', 'push_to_goal': 'tool_to_rim_cm', 'press_button': 'tool_to_cap_xy_cm',
            'open_drawer': 'tool_to_gap_cm', 'insert_peg': 'tool_to_grasp_cm'}


def run_task(policy: Any, env: Any, task: str, seeds: list[int]) -> list[dict]:
    from vla_policy.evaluate import rollout
    update, _ = STAGES[task]
    rows = []
    for seed in seeds:
        tracker, start = Tracker(), {}

        def track(env: Any, tick: int) -> None:
            if not tick:  # after the reset: where the objects started
                start.update(env.privileged_state())
            else:
                update(env.privileged_state(), start, tracker)

        episode, _ = rollout(env, policy, task, seed, on_tick=track)
        row = {'seed': seed, 'success': episode.success}
        row.update({k: round(v, 2) for k, v in tracker.values.items()})
        rows.append(row)
    return rows


def summarise(task: str, rows: list[dict]) -> dict:
    _, stages = STAGES[task]
    funnel = {label: int(sum(test(r) for r in rows)) for label, test in stages}
    funnel['success'] = int(sum(r['success'] for r in rows))
    keys = [k for k in rows[0] if k not in ('seed', 'success')] if rows else []
    medians = {k: round(float(np.median([r[k] for r in rows if k in r])), 2) for k in keys
               if any(k in r for r in rows)}
    return {'episodes': len(rows), 'stages': funnel, 'medians': medians}


def line(task: str, s: dict) -> str:
    n = s['episodes']
    stages = ', '.join(f'{label} {count}/{n}' for label, count in s['stages'].items())
    key = HEADLINE[task]
    return f"{task}: {stages}; median {key} {s['medians'].get(key, float('nan'))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', type=Path, help='checkpoint directory (or training run)')
    parser.add_argument('--layout-oracle', type=Path, metavar='RUN',
                        help="a bench_layout_oracle.py run: probe its policy (RUN/train, unless --checkpoint) "
                             "in the simulator whose observations carry the layout, as that benchmark evaluates it")
    parser.add_argument('--tasks', default='workbench', help='workbench task names or "workbench" (default)')
    parser.add_argument('--episodes', type=int, default=20, help='held-out layouts per task (default 20)')
    parser.add_argument('--seed', type=int, default=1000, help='first held-out seed (default 1000)')
    parser.add_argument('--json', type=Path, help='write the per-episode rows and summaries here')
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error('--episodes must be >= 1')
    if args.checkpoint is None and args.layout_oracle is None:
        parser.error('give --checkpoint (or --layout-oracle RUN)')
    checkpoint = args.checkpoint or args.layout_oracle / 'train'

    import torch

    import vla_sim
    from vla_policy.evaluate import sim_env_for
    from vla_policy.policy import VLAPolicy
    try:
        tasks = vla_sim.resolve_tasks(args.tasks)
    except (KeyError, ValueError) as err:
        parser.error(str(err))
    unknown = [t for t in tasks if t not in STAGES]
    if unknown:
        parser.error(f'no stages for {unknown}: this probe knows the workbench tasks {sorted(STAGES)}')
    make_env = None
    if args.layout_oracle is not None:
        from bench_layout_oracle import load_run
        try:
            make_env, _ = load_run(args.layout_oracle)
        except (OSError, ValueError, KeyError, TypeError) as err:
            parser.error(f'--layout-oracle {args.layout_oracle}: not a bench_layout_oracle.py run ({err!r})')
    torch.set_num_threads(1)
    policy = VLAPolicy.from_pretrained(checkpoint)
    policy.eval()
    env = sim_env_for(policy.config, make_env)  # as vla_policy.evaluate renders and acts
    result: dict[str, Any] = {'checkpoint': str(checkpoint), 'seeds': [args.seed, args.seed + args.episodes - 1],
                              'layout_oracle': args.layout_oracle is not None, 'tasks': {}}
    try:
        for task in tasks:
            rows = run_task(policy, env, task, list(range(args.seed, args.seed + args.episodes)))
            summary = summarise(task, rows)
            result['tasks'][task] = {**summary, 'rows': rows}
            print(line(task, summary), flush=True)
    finally:
        env.close()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
