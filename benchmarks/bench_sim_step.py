"""Time of one 30 Hz control tick of the simulated robot: physics step + 224x224 render.

Runs the scripted expert through episodes (so the arm moves and grasps, as in collection)
and times only ``SimEnv.step`` with rendering on, pinned to one CPU core with one
llvmpipe thread. Physics and rendering are also timed apart.

    ./run.sh bench bench_sim_step.py            # or: PYTHONPATH=vla_sim python benchmarks/bench_sim_step.py
    python benchmarks/bench_sim_step.py --ticks 2000 --size 224 --cameras front wrist
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=1000, help="timed control ticks (default 1000)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed ticks first (default 30)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    parser.add_argument("--cameras", nargs="+", default=["front"], help="cameras rendered each tick (default front)")
    parser.add_argument("--threads", type=int, default=1, help="llvmpipe render threads (default 1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU core")
    return parser.parse_args()


def stats_ms(samples: list[float]) -> str:
    import numpy as np

    ms = np.asarray(samples) * 1e3
    return f"mean {ms.mean():6.2f}  p50 {np.percentile(ms, 50):6.2f}  p99 {np.percentile(ms, 99):6.2f}  max {ms.max():6.2f} ms"


def main() -> None:
    args = parse_args()
    # Before mujoco (and Mesa) load: offscreen EGL on the CPU, single-threaded everything.
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ["LP_NUM_THREADS"] = str(args.threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})

    import mujoco
    import numpy as np

    from vla_sim import TASKS, ScriptedExpert, SimEnv

    env = SimEnv(image_size=args.size, cameras=tuple(args.cameras))
    expert = ScriptedExpert(env)
    tasks = sorted(TASKS)
    episode = 0
    obs = env.reset(task=tasks[0], seed=0)
    expert.reset()
    tick_s, physics_s, render_s, expert_s = [], [], [], []
    for i in range(args.warmup + args.ticks):
        t_expert = time.perf_counter()
        action = expert.act(obs)
        t0 = time.perf_counter()
        obs, _, done, _ = env.step(action)
        t1 = time.perf_counter()
        if i >= args.warmup:
            tick_s.append(t1 - t0)
            expert_s.append(t0 - t_expert)
        if done:
            episode += 1
            obs = env.reset(task=tasks[episode % len(tasks)], seed=episode)
            expert.reset()

    # Physics alone (20 substeps + forward) and rendering alone, on the final state.
    env_fast = SimEnv(render_images=False)
    obs = env_fast.reset(task=tasks[0], seed=0)
    hold = obs["joint_positions"]
    for i in range(args.ticks):
        t0 = time.perf_counter()
        env_fast.step(hold)
        physics_s.append(time.perf_counter() - t0)
        if env_fast.elapsed_steps >= env_fast.task.max_steps:
            env_fast.reset(task=tasks[0], seed=i)
    for _ in range(args.ticks):
        t0 = time.perf_counter()
        for cam in args.cameras:
            env.render(cam)
        render_s.append(time.perf_counter() - t0)
    env.close()

    print(f"vla_sim tick benchmark: {args.ticks} ticks at {1 / env.dt:.0f} Hz, {env.n_substeps} physics substeps,"
          f" {args.size}x{args.size} cameras {args.cameras}, {episode} episodes")
    print(f"  machine: {platform.processor() or platform.machine()}, mujoco {mujoco.__version__},"
          f" MUJOCO_GL={os.environ['MUJOCO_GL']}, LP_NUM_THREADS={args.threads},"
          f" cores used: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
    print(f"  step + render : {stats_ms(tick_s)}")
    print(f"  physics only  : {stats_ms(physics_s)}")
    print(f"  render only   : {stats_ms(render_s)}")
    print(f"  expert.act    : {stats_ms(expert_s)}  (IK on its own MjData, not part of the tick)")
    budget = 1e3 * env.dt
    print(f"  real-time factor at mean step+render: {budget / (1e3 * float(np.mean(tick_s))):.1f}x"
          f" ({budget:.1f} ms budget per tick)")


if __name__ == "__main__":
    main()
