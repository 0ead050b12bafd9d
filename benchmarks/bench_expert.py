"""Scripted-expert success rate per task over seeded episodes, with 95% Wilson intervals.

Each task runs episodes with seeds first_seed .. first_seed + episodes - 1 in SimEnv (images off
by default, so it measures the expert and the physics, not the renderer).

    ./run.sh bench bench_expert.py            # or: PYTHONPATH=vla_sim python benchmarks/bench_expert.py
    python benchmarks/bench_expert.py --episodes 50 --tasks pick_red stack_green_on_red --json out.json
    python benchmarks/bench_expert.py --tasks workbench     # a suite: tabletop (= all) or workbench
    python benchmarks/bench_expert.py --tasks workbench --action-mode ee_delta   # expert through EE deltas
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50, help="episodes per task (default 50)")
    parser.add_argument("--tasks", nargs="+", default=["all"],
                        help="task names, suite names (tabletop, workbench), or 'all' (the cube tasks; default)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--render", action="store_true", help="render the front camera each tick (slower)")
    parser.add_argument("--noise", type=float, default=0.0, help="expert joint-target noise std, rad (default 0)")
    parser.add_argument("--max-joint-speed", type=float, default=1.5, help="expert joint speed limit, rad/s")
    parser.add_argument("--action-mode", choices=("joint", "ee_delta"), default="joint",
                        help="SimEnv action mode; ee_delta converts the expert's joint targets (default joint)")
    parser.add_argument("--json", type=str, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    return args


def main() -> int:
    args = parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np

    from vla_sim import ScriptedExpert, SimEnv, resolve_tasks
    from vla_common.stats import rate_summary

    try:
        names = resolve_tasks(",".join(args.tasks))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    env = SimEnv(render_images=args.render, action_mode=args.action_mode)
    to_action = env.ee_delta_for if args.action_mode == "ee_delta" else (lambda a: a)
    expert = ScriptedExpert(env, max_joint_speed=args.max_joint_speed, noise=args.noise, seed=args.first_seed)
    results: dict[str, dict] = {}
    start = time.perf_counter()
    print(f"scripted expert, {args.episodes} episodes per task, seeds {args.first_seed}.."
          f"{args.first_seed + args.episodes - 1}, render={args.render}, noise={args.noise},"
          f" action_mode={args.action_mode}")
    for name in names:
        t_task = time.perf_counter()
        successes, lengths, success_lengths, rewards, attempts, failed = 0, [], [], [], [], []
        for seed in range(args.first_seed, args.first_seed + args.episodes):
            obs = env.reset(task=name, seed=seed)
            expert.reset(seed=seed)
            done = False
            while not done:
                obs, reward, done, info = env.step(to_action(expert.act(obs)))
            successes += info["success"]
            lengths.append(info["elapsed_steps"])
            rewards.append(reward)
            attempts.append(expert.attempts)
            if info["success"]:
                success_lengths.append(info["elapsed_steps"])
            else:
                failed.append((seed, expert.phase))
        summary = rate_summary(successes, args.episodes)
        summary.update(
            mean_length=float(np.mean(lengths)),
            mean_success_length_s=float(np.mean(success_lengths) * env.dt) if success_lengths else None,
            mean_reward=float(np.mean(rewards)),
            mean_attempts=float(np.mean(attempts)),
            failed_seeds=[s for s, _ in failed],
            wall_s=time.perf_counter() - t_task,
        )
        results[name] = summary
        lo, hi = summary["ci95"]
        secs = f"{summary['mean_success_length_s']:.2f} s" if success_lengths else "-"
        print(f"  {name:20s} {successes:3d}/{args.episodes}  rate {summary['success_rate']:.3f}"
              f"  95% CI [{lo:.3f}, {hi:.3f}]  mean length {summary['mean_length']:6.1f} ticks"
              f" ({secs} when successful)  attempts {summary['mean_attempts']:.2f}  {summary['wall_s']:.1f} s")
        for seed, phase in failed:
            print(f"      failed: seed {seed} (expert ended in phase {phase!r})")
    total = sum(r["successes"] for r in results.values())
    n = sum(r["n"] for r in results.values())
    overall = rate_summary(total, n)
    wall = time.perf_counter() - start
    print(f"  {'overall':20s} {total:3d}/{n}  rate {overall['success_rate']:.3f}"
          f"  95% CI [{overall['ci95'][0]:.3f}, {overall['ci95'][1]:.3f}]")
    print(f"  total wall time {wall:.1f} s ({n / wall * 60:.0f} episodes per wall minute)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"policy": "expert", "episodes_per_task": args.episodes, "seed": args.first_seed,
                       "action_mode": args.action_mode,
                       "tasks": results, "overall": overall, "wall_s": wall}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
