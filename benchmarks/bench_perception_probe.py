"""Can the policy's vision encoder find the scene's objects, and from how many layouts?

    python benchmarks/bench_perception_probe.py [--task press_button] [--layouts 50 250 1000]
        [--steps 2000] [--aug-shift 0.0625] [--preset cpu] [--set KEY=VALUE ...] [--json OUT.json]

A policy that misses a small object by 5 cm on new layouts may not see where it is, or may see it
and not act on it. This probe separates the two without any demonstration: it renders the main
camera's first frame of N layouts (seeds 0..N-1, the arm at its home pose, as recorded at
``--source-size`` and resized to the model's ``image_size`` as the trainer does), and trains the
policy's own vision encoder (``VisionEncoder`` of the preset and ``--set`` overrides, without the
instruction's FiLM) with a small MLP to regress every object's position from the simulator's
ground truth, with the trainer's augmentation (random shift ``--aug-shift`` and colour jitter).
It then prints, per object, the median error on ``--held-out`` new layouts (seeds 1000+) and on
the training layouts, beside "guess the mean" (the error of always answering the average
position). Objects lying on the table are regressed in x, y only; z too where it varies (the
workbench's marker).

Held out near the training figure: the encoder localises it. Held out near the guess: it does
not; a training figure far below the held-out one: it memorised the N layouts. One torch thread;
fixed steps, so the figures do not depend on the machine's speed. Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def render_layouts(env, task: str, seeds, size: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(N, size, size, 3) uint8 first frames and {object: (N, 3) positions}."""
    from vla_policy.images import prepare_image
    images, positions = [], {}
    for seed in seeds:
        obs = env.reset(task=task, seed=seed)
        images.append(prepare_image(obs['image'], size))
        for name, obj in env.privileged_state()['objects'].items():
            positions.setdefault(name, []).append(np.asarray(obj['pos'], dtype=np.float64))
    return np.stack(images), {k: np.stack(v) for k, v in positions.items()}


def target_columns(positions: dict[str, np.ndarray]) -> list[tuple[str, int]]:
    """(object, dims): x, y of every object that moves between layouts, z too where z varies (> 1 mm sd)."""
    cols = []
    for name, pos in positions.items():
        if pos[:, :2].std(0).max() < 1e-3 and pos[:, 2].std() < 1e-3:
            continue  # the same in every layout: nothing to find
        cols.append((name, 3 if pos[:, 2].std() > 1e-3 else 2))
    return cols


def stack_targets(positions: dict[str, np.ndarray], cols: list[tuple[str, int]]) -> np.ndarray:
    return np.concatenate([positions[name][:, :dims] for name, dims in cols], axis=1)


def median_errors_cm(pred: np.ndarray, truth: np.ndarray, cols: list[tuple[str, int]]) -> dict[str, float]:
    out, i = {}, 0
    for name, dims in cols:
        out[name] = round(float(np.median(np.linalg.norm(pred[:, i:i + dims] - truth[:, i:i + dims], axis=1))) * 100, 2)
        i += dims
    return out


def train_probe(config, images, targets, steps: int, shift: int, seed: int = 0, batch: int = 32, lr: float = 1e-3):
    """Train VisionEncoder(config) + MLP on (images, normalised targets); returns a predict function."""
    import torch
    import torch.nn as nn

    from vla_policy.encoders import VisionEncoder
    from vla_policy.images import augment_images
    from vla_policy.schedule import get_lr
    torch.manual_seed(seed)
    encoder = VisionEncoder(config, load_pretrained=False)
    head = nn.Sequential(nn.Linear(encoder.out_dim, 256), nn.SiLU(), nn.Linear(256, targets.shape[1]))
    mean, std = targets.mean(0, keepdims=True), targets.std(0, keepdims=True) + 1e-6
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy((targets - mean) / std).float()
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    warmup = max(1, min(100, steps // 10))  # linear warmup, then a cosine to 0 over all the steps (the trainer's get_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: get_lr(s, s / steps, 1.0, warmup, 0.0, min_ratio=0.0))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (batch,), generator=g)
        x = augment_images(x_all[idx].unsqueeze(1), g, shift=shift).squeeze(1)
        loss = (head(encoder(x)) - y_all[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    encoder.eval()

    def predict(frames: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = [head(encoder(torch.from_numpy(frames[i:i + 256]))).numpy() for i in range(0, len(frames), 256)]
        return np.concatenate(out) * std + mean

    return predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', default='press_button', help="a task of the scene to probe (default press_button: "
                        "the workbench; pick_red: the cube table)")
    parser.add_argument('--layouts', type=int, nargs='+', default=[50, 250, 1000],
                        help='numbers of training layouts (seeds 0..N-1) to train a probe on (default 50 250 1000)')
    parser.add_argument('--held-out', type=int, default=200, help='new layouts to test on, seeds 1000+ (default 200)')
    parser.add_argument('--steps', type=int, default=2000, help='training steps of 32 frames per probe (default 2000)')
    parser.add_argument('--aug-shift', type=float, default=0.0625,
                        help="random shift as a fraction of the image size, as vla train's (default 0.0625; 0: none)")
    parser.add_argument('--source-size', type=int, default=128, help='rendered image size, as recorded (default 128)')
    parser.add_argument('--preset', default='cpu', help='model preset whose vision encoder is probed (default cpu)')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='a VLAConfig field, e.g. --set image_size=128 (repeatable)')
    parser.add_argument('--json', type=Path, help='write the figures here')
    args = parser.parse_args(argv)
    if min(args.layouts) < 2 or args.held_out < 1 or args.steps < 1:
        parser.error('--layouts must be >= 2 each, --held-out and --steps >= 1')
    if not 0.0 <= args.aug_shift < 0.5:
        parser.error('--aug-shift must be a fraction in [0, 0.5)')

    import torch

    import vla_sim
    from vla_policy.config import preset
    from vla_policy.train_config import parse_set
    try:
        overrides = parse_set(args.set)
        config = preset(args.preset, **{**overrides, 'film': False})
    except (TypeError, ValueError) as err:
        parser.error(f'model settings: {err}')
    if config.vision_encoder != 'cnn':
        parser.error('this probe trains the cnn encoder from scratch; a clip preset is not one')
    if args.task not in vla_sim.ALL_TASKS:
        parser.error(f'unknown task {args.task!r}; valid: {sorted(vla_sim.ALL_TASKS)}')
    torch.set_num_threads(1)
    env = vla_sim.SimEnv(image_size=args.source_size)
    try:
        t0 = time.perf_counter()
        train_images, train_pos = render_layouts(env, args.task, range(max(args.layouts)), config.image_size)
        test_images, test_pos = render_layouts(env, args.task, range(1000, 1000 + args.held_out), config.image_size)
    finally:
        env.close()
    cols = target_columns(train_pos)
    train_y, test_y = stack_targets(train_pos, cols), stack_targets(test_pos, cols)
    guess = median_errors_cm(np.broadcast_to(train_y.mean(0), test_y.shape), test_y, cols)
    shift = int(round(args.aug_shift * config.image_size))
    print(f"{args.task}'s scene, {config.image_size} px from {args.source_size} px, shift {shift} px, {args.steps} "
          f"steps; {len(test_y)} held-out layouts rendered with the training ones in {time.perf_counter() - t0:.0f} s")
    print(f'guess the mean: median error (cm) {guess}')
    result = {'task': args.task, 'image_size': config.image_size, 'source_size': args.source_size, 'shift_px': shift,
              'steps': args.steps, 'overrides': overrides, 'objects': dict(cols), 'guess_the_mean_cm': guess,
              'probes': []}
    for n in args.layouts:
        t0 = time.perf_counter()
        predict = train_probe(config, train_images[:n], train_y[:n], args.steps, shift)
        held = median_errors_cm(predict(test_images), test_y, cols)
        seen = median_errors_cm(predict(train_images[:min(n, 200)]), train_y[:min(n, 200)], cols)
        result['probes'].append({'layouts': n, 'held_out_cm': held, 'training_cm': seen,
                                 'seconds': round(time.perf_counter() - t0, 1)})
        print(f'{n} layouts: held-out median error (cm) {held}; on training layouts {seen}', flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
