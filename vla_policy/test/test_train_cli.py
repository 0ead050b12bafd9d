"""The `train` command line: every flag keeps its name, default and meaning.

The parser snapshot and the expected configurations below were taken from the hand-written parser
that the one generated from TrainConfig replaced (plus --val-batches, which it lacked); they pin the
public interface of `vla train` / `ros2 run vla_policy train`.
"""
import argparse
import dataclasses

import pytest

from vla_policy.config import preset_lr
from vla_policy.train import TrainConfig, build_parser, train_config_from_args

# (option strings, dest, default, type, choices, nargs, const, required, action) of every option
PARSER = [
    (('-h', '--help'), 'help', '==SUPPRESS==', None, None, 0, None, False, '_HelpAction'),
    (('--data',), 'data', None, None, None, None, None, True, '_StoreAction'),
    (('--out',), 'out', 'runs/train', None, None, None, None, False, '_StoreAction'),
    (('--preset',), 'preset', 'cpu', None, ('cpu', 'clip-bert', 'tiny', 'tiny-clip-bert'), None, None, False,
     '_StoreAction'),
    (('--config',), 'config', None, None, None, None, None, False, '_StoreAction'),
    (('--set',), 'set', None, None, None, None, None, False, '_AppendAction'),
    (('--cameras',), 'cameras', 'all', None, None, None, None, False, '_StoreAction'),
    (('--clip-path',), 'clip_path', None, None, None, None, None, False, '_StoreAction'),
    (('--bert-path',), 'bert_path', None, None, None, None, None, False, '_StoreAction'),
    (('--steps',), 'steps', None, 'int', None, None, None, False, '_StoreAction'),
    (('--epochs',), 'epochs', None, 'float', None, None, None, False, '_StoreAction'),
    (('--batch-size',), 'batch_size', 32, 'int', None, None, None, False, '_StoreAction'),
    (('--lr',), 'lr', None, 'float', None, None, None, False, '_StoreAction'),
    (('--weight-decay',), 'weight_decay', 0.0001, 'float', None, None, None, False, '_StoreAction'),
    (('--warmup-steps',), 'warmup_steps', 200, 'int', None, None, None, False, '_StoreAction'),
    (('--min-lr-ratio',), 'min_lr_ratio', 0.01, 'float', None, None, None, False, '_StoreAction'),
    (('--grad-clip',), 'grad_clip', 1.0, 'float', None, None, None, False, '_StoreAction'),
    (('--ema',), 'ema', 0.0, 'float', None, None, None, False, '_StoreAction'),
    (('--val-fraction',), 'val_fraction', 0.1, 'float', None, None, None, False, '_StoreAction'),
    (('--val-every',), 'val_every', 500, 'int', None, None, None, False, '_StoreAction'),
    # added with the generated parser (TrainConfig.val_batches had no flag)
    (('--val-batches',), 'val_batches', 20, 'int', None, None, None, False, '_StoreAction'),
    (('--checkpoint-every',), 'checkpoint_every', 1000, 'int', None, None, None, False, '_StoreAction'),
    (('--keep-checkpoints',), 'keep_checkpoints', 3, 'int', None, None, None, False, '_StoreAction'),
    (('--log-every',), 'log_every', 25, 'int', None, None, None, False, '_StoreAction'),
    (('--no-augment',), 'no_augment', False, None, None, 0, True, False, '_StoreTrueAction'),
    (('--aug-shift',), 'aug_shift', 0.0625, 'float', None, None, None, False, '_StoreAction'),
    (('--resume',), 'resume', None, None, None, '?', 'auto', False, '_StoreAction'),
    (('--seeds',), 'seeds', 1, 'int', None, None, None, False, '_StoreAction'),
    (('--device',), 'device', 'auto', None, None, None, None, False, '_StoreAction'),
    (('--state-noise',), 'state_noise', 0.0, 'float', None, None, None, False, '_StoreAction'),
    (('--seed',), 'seed', 0, 'int', None, None, None, False, '_StoreAction'),
    (('--workers',), 'workers', -1, 'int', None, None, None, False, '_StoreAction'),
    (('--cache-images',), 'cache_images', 'auto', None, ('auto', 'on', 'off'), None, None, False, '_StoreAction'),
    (('--cache-budget-gb',), 'cache_budget_gb', 4.0, 'float', None, None, None, False, '_StoreAction'),
    (('--max-minutes',), 'max_minutes', None, 'float', None, None, None, False, '_StoreAction'),
    (('--skip-invalid',), 'skip_invalid', False, None, None, 0, True, False, '_StoreTrueAction'),
    (('--include-failed',), 'include_failed', False, None, None, 0, True, False, '_StoreTrueAction'),
    (('--action-space',), 'action_space', 'joint', None, ('joint', 'ee_delta'), None, None, False, '_StoreAction'),
    (('--threads',), 'threads', 0, 'int', None, None, None, False, '_StoreAction'),
]


def describe(action: argparse.Action) -> tuple:
    return (tuple(action.option_strings), action.dest, action.default, getattr(action.type, '__name__', action.type),
            tuple(action.choices) if action.choices is not None else None, action.nargs, action.const,
            action.required, type(action).__name__)


def test_every_flag_keeps_its_name_default_type_and_kind():
    parser = build_parser()
    assert sorted(describe(a) for a in parser._actions) == sorted(PARSER)
    groups = [sorted(o for a in g._group_actions for o in a.option_strings) for g in parser._mutually_exclusive_groups]
    assert groups == [['--epochs', '--steps']]


def test_every_train_config_field_has_a_flag():
    dests = {a.dest for a in build_parser()._actions}
    for field in dataclasses.fields(TrainConfig):
        assert field.name in dests or (field.name == 'augment' and 'no_augment' in dests), field.name


def config(*argv: str) -> TrainConfig:
    return train_config_from_args(build_parser().parse_args(['--data', 'd', *argv]))


CASES = [
    ([], {}),
    (['--out', 'runs/x', '--steps', '7', '--batch-size', '8'], dict(out='runs/x', steps=7, batch_size=8)),
    (['--epochs', '2.5'], dict(epochs=2.5)),
    (['--preset', 'clip-bert'], dict(lr=5e-4)),
    (['--preset', 'tiny', '--lr', '3e-3'], dict(lr=3e-3)),
    (['--weight-decay', '0.01', '--warmup-steps', '0', '--min-lr-ratio', '0', '--grad-clip', '0.5', '--ema', '0.99'],
     dict(weight_decay=0.01, warmup_steps=0, min_lr_ratio=0.0, grad_clip=0.5, ema=0.99)),
    (['--val-fraction', '0.2', '--val-every', '10'], dict(val_fraction=0.2, val_every=10)),
    (['--val-batches', '3'], dict(val_batches=3)),
    (['--checkpoint-every', '50', '--keep-checkpoints', '1', '--log-every', '5'],
     dict(checkpoint_every=50, keep_checkpoints=1, log_every=5)),
    (['--no-augment', '--aug-shift', '0.1'], dict(augment=False, aug_shift=0.1)),
    (['--seed', '3', '--device', 'cpu', '--workers', '0', '--cache-images', 'off', '--cache-budget-gb', '0.5'],
     dict(seed=3, device='cpu', workers=0, cache_images='off', cache_budget_gb=0.5)),
    (['--max-minutes', '1.5', '--steps', '100'], dict(max_minutes=1.5, steps=100)),
    (['--skip-invalid', '--include-failed', '--threads', '2'], dict(skip_invalid=True, include_failed=True, threads=2)),
    (['--action-space', 'ee_delta'], dict(action_space='ee_delta')),
    (['--resume', '--set', 'chunk_size=4', '--cameras', 'none', '--clip-path', 'c', '--bert-path', 'b',
      '--config', 'x.json'], {}),
]


@pytest.mark.parametrize('argv,changed', CASES, ids=[' '.join(a) or 'defaults' for a, _ in CASES])
def test_arguments_give_the_training_configuration(argv, changed):
    expected = TrainConfig(**{'data': 'd', 'lr': preset_lr('cpu'), **changed})
    assert config(*argv) == expected


def test_model_options_stay_on_the_namespace():
    args = build_parser().parse_args(['--data', 'd', '--resume', '--set', 'a=1', '--set', 'b=x', '--cameras', 'wrist',
                                      '--clip-path', 'c', '--bert-path', 'b', '--config', 'x.json', '--preset', 'tiny'])
    assert (args.resume, args.set, args.cameras, args.clip_path, args.bert_path, args.config, args.preset) == \
        ('auto', ['a=1', 'b=x'], 'wrist', 'c', 'b', 'x.json', 'tiny')
    assert build_parser().parse_args(['--data', 'd', '--resume', 'ck']).resume == 'ck'


@pytest.mark.parametrize('argv', [['--steps', '1', '--epochs', '1'], ['--cache-images', 'maybe'],
                                  ['--preset', 'huge'], ['--steps', 'x'], ['--lr', 'fast']])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(['--data', 'd', *argv])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args([])  # --data is required


def test_help_names_every_flag_and_its_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(['--help'])
    text = capsys.readouterr().out
    for option in (o for a in PARSER for o in a[0]):
        assert option in text
