"""The evaluation report as data: a header and one list of sections, each a title and parts.

``build_report(inputs)`` decides what the report shows; ``report_render`` turns the same
``Report`` into Markdown and HTML through ``templates/report.md.j2`` and ``report.html.j2``,
which render any section from its parts. Adding a section is one entry in ``build_report``'s
list (a new kind of part is one dataclass in ``report_model``, whose names are importable from
here too, and one branch in each template).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vla_bringup.report_figures import (async_latency_figure, latency_figure, loss_figure,
                                        success_figure)
from vla_bringup.report_inputs import LABELS, Metrics, Rollout, RunInputs, optional_float
from vla_bringup.report_model import (Bullets, Facts, Figure, Media, Part, Report, Rollouts,
                                      Section, Table, Text)


def build_report(inputs: RunInputs, created: str) -> Report:
    """The sections of the report of ``inputs``, in page order (figures drawn here)."""
    results, tasks, metrics = inputs.results, inputs.tasks, inputs.metrics
    latency_png = latency_figure(results)
    sections = [
        Section('results', 'Results per task', [
            Table(*task_table(results, tasks), css='results'),
            *seed_parts(results),
            Facts(run_facts(results)),
            Figure('success', 'Success rate per task', success_figure(results, tasks))]),
        comparison_section(inputs),
        Section('training', 'Training', [
            *([Text(f'Training log {metrics_text(metrics, inputs.run_dir)}.')]
              if metrics is not None else []),
            Figure('loss', 'Training loss', loss_figure(metrics))
            if metrics is not None and (metrics.train or metrics.val)
            else Text('No loss curves (see notes).')]),
        Section('latency', 'Control latency', [
            Figure('latency', 'Control latency', latency_png) if latency_png is not None
            else Text('No per-tick latency samples (see notes).')]),
        async_latency_section(inputs.latency_bench, inputs.run_dir),
        Section('stages', 'Stage wall times', [Table(*stage_table(inputs.stages), css='stages')])
        if inputs.stages is not None else None,
        Section('rollouts', 'Rollouts', [
            Rollouts(task or 'not matched to a task',
                     [Media(rollout_caption(r), r.path) for r in chosen])
            for task, chosen in inputs.rollouts.items()]
            or [Text('No rollout videos (see notes).')]),
        Section('notes', 'Missing inputs and notes', [Bullets(inputs.notes, css='notes')])
        if inputs.notes else None,
    ]
    return Report(inputs.run_dir.name, inputs.run_dir, created, summary_line(results),
                  [s for s in sections if s is not None])


# -- text -------------------------------------------------------------------------------------
def _rate(entry: dict | None) -> str:
    if entry is None:
        return '—'
    return f'{entry["successes"]}/{entry["n"]} ({entry["success_rate"]:.0%})'


def _ci(entry: dict | None) -> str:
    return '—' if entry is None else f'[{entry["ci95"][0]:.2f}, {entry["ci95"][1]:.2f}]'


def _pair(entries: Sequence[dict | None], key: str, fmt: str) -> str:
    return ' / '.join('—' if e is None or e.get(key) is None else format(e[key], fmt)
                      for e in entries)


def task_table(results: dict[str, dict], tasks: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-task comparison (overall last)."""
    sources = list(results)
    header = ['task']
    for s in sources:
        header += [f'{LABELS[s]} success', f'{LABELS[s]} 95% CI']
    both = ' / '.join(LABELS[s] for s in sources)
    header += [f'mean reward ({both})', f'mean length ({both})', f'e-stops ({both})']
    rows = []
    for name in [*tasks, 'overall']:
        entries = [results[s]['overall'] if name == 'overall' else results[s]['tasks'].get(name)
                   for s in sources]
        row = [name]
        for e in entries:
            row += [_rate(e), _ci(e)]
        row += [_pair(entries, 'mean_reward', '.2f'), _pair(entries, 'mean_length', '.1f'),
                _pair(entries, 'estops', '.0f')]
        rows.append(row)
    return header, rows


def summary_line(results: dict[str, dict]) -> str:
    """Policy success as a fraction of the baseline's (or what there is to say without one)."""
    parts = {s: results[s]['overall'] for s in results}
    text = {s: f'{o["successes"]}/{o["n"]} episodes ({o["success_rate"]:.1%}, 95% CI '
               f'[{o["ci95"][0]:.2f}, {o["ci95"][1]:.2f}])' for s, o in parts.items()}
    seeds = {s: _training_seed_mean(results[s]) for s in parts}
    for s, mean in seeds.items():
        if mean is not None:
            k, rate, low, high = mean
            text[s] += (f' pooled over {k} training seeds (mean over the seeds {rate:.1%}, 95% CI '
                        f'of the mean [{low:.2f}, {high:.2f}])')
    if 'policy' in parts and 'baseline' in parts:
        policy, baseline = parts['policy']['success_rate'], parts['baseline']['success_rate']
        if seeds['policy'] is not None:
            policy = seeds['policy'][1]
        if baseline > 0:
            ratio = f'{policy / baseline:.1%} of the scripted baseline\'s success rate'
        else:
            ratio = 'the scripted baseline had no success, so there is no ratio'
        return (f'The VLA policy succeeded in {text["policy"]}: {ratio} '
                f'(baseline: {text["baseline"]}).')
    source = next(iter(parts))
    missing = 'baseline' if source == 'policy' else 'policy'
    return (f'The {LABELS[source]} succeeded in {text[source]}; there are no {LABELS[missing]} '
            f'results (eval/{missing}.json) to compare with.')


def _training_seed_mean(data: dict) -> tuple[int, float, float, float] | None:
    """(K, mean, CI low, CI high) over the training seeds of results with several, else None."""
    entry = data.get('training_seeds')
    overall = entry.get('tasks', {}).get('overall') if isinstance(entry, dict) else None
    if not isinstance(overall, dict) or len(overall.get('seeds') or []) < 2:
        return None
    low, high = overall.get('ci95_mean', (0.0, 1.0))
    return len(overall['seeds']), float(overall.get('mean', 0.0)), float(low), float(high)


def _fmt_latency(lat: dict) -> str:
    p50, p99 = optional_float(lat.get('p50')), optional_float(lat.get('p99'))
    if p50 is None and p99 is None and not lat['samples']:
        return 'not measured'
    if p50 is None and lat['samples']:
        p50 = float(np.percentile(lat['samples'], 50))
    if p99 is None and lat['samples']:
        p99 = float(np.percentile(lat['samples'], 99))
    return ', '.join(f'{k} {v:.1f} ms' for k, v in (('p50', p50), ('p99', p99)) if v is not None)


def run_facts(results: dict[str, dict]) -> list[tuple[str, str]]:
    """(label, value) lines about each evaluation: what ran, how many episodes, rates, which
    simulator timing (lock-step or real time), controller overruns, and the CPU."""
    from vla_common.evaluation import controller_text, machine_text, simulation_text
    facts = []
    machines = []
    for source, data in results.items():
        rate = optional_float(data.get('control_rate_hz'))
        timeouts = sum(int(t.get('timeouts') or 0) for t in data['tasks'].values())
        controller = data.get('controller') if isinstance(data.get('controller'), dict) else None
        simulation = data.get('simulation') if isinstance(data.get('simulation'), dict) else None
        facts.append((LABELS[source],
                      f'{data.get("policy", "?")}; {data.get("episodes_per_task", "?")} episodes '
                      f'per task from seed {data.get("seed", "?")}; latency '
                      f'{_fmt_latency(data["latency_ms"])}; control rate '
                      f'{"not measured" if rate is None else f"{rate:.1f} Hz"}; '
                      + (f'controller {controller_text(controller)}; ' if controller else '')
                      + f'{timeouts} timed-out episode(s); simulation '
                      + ('timing not recorded' if simulation is None and data.get('runner') != 'in-process'
                         else simulation_text(simulation, data.get('runner')))))
        if isinstance(data.get('machine'), dict):
            machines.append(machine_text(data['machine']))
    if machines:
        facts.append(('Machine', '; '.join(dict.fromkeys(machines))))
    return facts


def stage_table(stages: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the stage wall times (the command column only where one is known)."""
    commands = any(s['command'] for s in stages.values())
    header = ['stage', 'seconds', 'status'] + (['command'] if commands else [])
    rows = [[name, '—' if s['seconds'] is None else f'{s["seconds"]:.1f}', s['status']]
            + ([s['command']] if commands else []) for name, s in stages.items()]
    total = sum(s['seconds'] or 0.0 for s in stages.values())
    rows.append(['total', f'{total:.1f}', ''] + ([''] if commands else []))
    return header, rows


def metrics_text(metrics: Metrics, run_dir: Path) -> str:
    """Where the training log is, how far it goes and its last losses."""
    last_train = f'{metrics.train[-1][1]:.4g}' if metrics.train else '—'
    last_val = f'{metrics.val[-1][1]:.4g}' if metrics.val else '—'
    elapsed = '' if metrics.elapsed_s is None else f', {metrics.elapsed_s:.0f} s of training'
    text = (f'from {metrics.source.relative_to(run_dir)}: {len(metrics.steps)} logged rows up to '
            f'step {max(metrics.steps) if metrics.steps else 0}{elapsed}; last train loss '
            f'{last_train}, last validation loss {last_val}')
    if metrics.ignored:
        text += (f' ({", ".join(p.name for p in metrics.ignored)} beside it, '
                 'the same log in another format, not read)')
    return text


def rollout_caption(r: Rollout) -> str:
    who = LABELS.get(r.source, 'rollout')
    outcome = {True: 'success', False: 'failure', None: 'outcome not recorded'}[r.success]
    seed = '' if r.seed is None else f', seed {r.seed}'
    return f'{r.task or "unmatched"}: {who} {outcome}{seed}'


# -- training seeds, comparisons, the sequential test, the latency benchmark ----------------------
def seed_parts(results: dict[str, dict]) -> list[Part]:
    """For results of several training seeds (``training_seeds``): each model's success, the
    mean over seeds with its spread and t interval, beside the pooled per-episode interval."""
    parts: list[Part] = []
    for source, data in results.items():
        entry = data.get('training_seeds')
        if not isinstance(entry, dict) or not isinstance(entry.get('tasks'), dict):
            continue
        seeds = ', '.join(str(s) for s in entry.get('seeds', []))
        parts.append(Text(f'{LABELS[source]}: {len(entry.get("seeds", []))} models trained with '
                          f'seeds {seeds} on the same data, each evaluated on the same episodes. '
                          'The table above pools their episodes (Wilson intervals of the '
                          'episodes); the spread across training seeds, and the Student-t 95% '
                          'interval of the mean over seeds, which counts the training-seed '
                          'variance too:'))
        rows = []
        for name, spread in entry['tasks'].items():
            pooled = data['overall'] if name == 'overall' else data['tasks'].get(name, {})
            rows.append([name, ' / '.join(f'{r:.0%}' for r in spread.get('rates', [])),
                         f'{spread.get("mean", 0):.0%}', f'{spread.get("std", 0):.2f}',
                         f'{spread.get("min", 0):.0%} – {spread.get("max", 0):.0%}',
                         '[{:.2f}, {:.2f}]'.format(*spread.get('ci95_mean', (0, 1))),
                         '[{:.2f}, {:.2f}]'.format(*pooled.get('ci95', (0, 1)))])
        parts.append(Table(['task', f'per seed ({seeds})', 'mean', 'std', 'min – max',
                            '95% CI of the mean (seeds)', '95% CI (pooled episodes)'], rows,
                           css='results'))
    return parts


def _count(n: int, k: int) -> str:
    return f'{k}/{n} ({k / n:.0%})' if n else '—'


def comparison_tables(data: dict, name_a: str, name_b: str) -> list[Part]:
    """One ``vla compare`` result (A against each B): the per-task table, the 2x2 table of the
    overall paired outcomes, and each side's training seeds where there are several."""
    parts: list[Part] = []
    for comparison in data['comparisons']:
        rows = comparison['tasks']
        tables = any('table' in r for r in rows.values())
        header = ['task', f'A: {name_a}', f'B: {name_b or comparison.get("b", "B")}',
                  'B − A [95% CI]', 'test', 'p', 'verdict']
        header += ['both / A only / B only / neither'] if tables else []
        body = []
        for task, r in rows.items():
            needed = r.get('episodes_needed') or r.get('training_seeds_needed')
            unit = 'training seeds per recipe' if r.get('training_seeds_needed') else 'episodes per policy'
            row = [task,
                   f'{_count(r["n_a"], r["successes_a"])} ' + '[{:.2f}, {:.2f}]'.format(*r.get('ci95_a', (0, 1))),
                   f'{_count(r["n_b"], r["successes_b"])} ' + '[{:.2f}, {:.2f}]'.format(*r.get('ci95_b', (0, 1))),
                   '{:+.2f} [{:+.2f}, {:+.2f}]'.format(r['difference'], *r['difference_ci95']),
                   str(r.get('test', '')), f'{r["p_value"]:.3g}',
                   r['verdict'] + (f' (~{needed} {unit} for ±{data.get("effect", 0.2):g})'
                                   if needed else '')]
            if tables:
                t = r.get('table')
                row.append('—' if not t else f'{t["both"]} / {t["a_only"]} / {t["b_only"]} / {t["neither"]}')
            body.append(row)
        parts.append(Table(header, body, css='results'))
        overall = rows.get('overall', {}).get('table')
        if overall:
            a_yes, a_no = overall['both'] + overall['a_only'], overall['b_only'] + overall['neither']
            b_yes, b_no = overall['both'] + overall['b_only'], overall['a_only'] + overall['neither']
            parts.append(Text('Overall, episode pairs on the same seeds (only the discordant pairs, '
                              'A only and B only, carry information about the difference; the exact '
                              'McNemar test compares them with a fair coin):'))
            parts.append(Table(['overall pairs', 'B succeeded', 'B failed', 'all'], [
                ['A succeeded', str(overall['both']), str(overall['a_only']), str(a_yes)],
                ['A failed', str(overall['b_only']), str(overall['neither']), str(a_no)],
                ['all pairs', str(b_yes), str(b_no), str(a_yes + a_no)]], css='pairs'))
        seeds = [(task, r) for task, r in rows.items()
                 if r.get('training_seeds_a') or r.get('training_seeds_b')]
        if seeds:
            lines = []
            for task, r in seeds:
                sides = []
                for side in ('a', 'b'):
                    spread = r.get(f'training_seeds_{side}')
                    sides.append(f'{side.upper()}: one model (its episode variance only)' if not spread
                                 else f'{side.upper()}: ' + ' / '.join(f'{x:.0%}' for x in spread['rates'])
                                 + f', mean {spread["mean"]:.0%}, sd {spread["std"]:.2f}')
                lines.append(f'{task}: ' + '; '.join(sides) + (f'; Welch df {r["df"]:.1f}' if 'df' in r else ''))
            parts.append(Text('Several training seeds: the test is Welch\'s t on the per-seed success '
                              'rates (each rate carries its episodes\' noise, so the training-seed '
                              'and the episode variance both count); B − A is the difference of the '
                              'means over training seeds.'))
            parts.append(Bullets(lines))
    return parts


def comparison_section(inputs: RunInputs) -> Section | None:
    """The paired comparison (``eval/compare*.json`` of ``vla compare``, else the policy against
    the baseline computed here as ``vla compare`` would) and the sequential test's record."""
    parts: list[Part] = []
    for path, data in inputs.comparisons:
        parts.append(Text(f'From {path.relative_to(inputs.run_dir)} (`vla compare`): A = '
                          f'{data.get("a", "?")}; differences that matter: ±{data.get("effect", 0.2):g}, '
                          f'alpha {data.get("alpha", 0.05):g}.'))
        parts += comparison_tables(data, str(data.get('a', 'A')), '')
    results = inputs.results
    if not inputs.comparisons and 'policy' in results and 'baseline' in results:
        from vla_bringup.comparison import compare_results
        try:
            rows = compare_results(results['baseline'], results['policy'])
        except ValueError as exc:
            parts.append(Text(f'No paired comparison of the policy with the baseline: {exc}'))
        else:
            overall = rows[-1]
            if overall.seeds_a is not None or overall.seeds_b is not None:
                method = ('several training seeds, so the models are compared across them: '
                          'Welch\'s t-test on the per-seed success rates and its t interval of '
                          'the difference of the means (the pairing of the episodes is not used)')
            elif overall.paired:
                method = ('paired on the same seeds, exact McNemar test on the discordant episodes, '
                          'Newcombe\'s paired interval of the difference')
            else:
                method = 'the seeds differ, so the pairing is lost: Fisher\'s exact test, unpaired interval'
            parts.append(Text(
                'The VLA policy (B) against the scripted baseline (A), computed from eval/baseline.json '
                'and eval/policy.json as `vla compare eval/baseline.json eval/policy.json` does: '
                + method + '; differences that matter: ±0.2, alpha 0.05.'))
            parts += comparison_tables({'effect': 0.2, 'alpha': 0.05, 'comparisons': [
                {'b': 'policy', 'tasks': {r.name: r.to_json() for r in rows}}]},
                LABELS['baseline'], LABELS['policy'])
    for source, data in results.items():
        seq = data.get('sequential')
        if not isinstance(seq, dict):
            continue
        parts.append(Text(f'Sequential evaluation of the {LABELS[source]} (`vla evaluate '
                          '--until-decided`): the stopping rule below was fixed and printed before '
                          'the first episode and stored with the results; the run stopped only when '
                          'it fired or at its maximum, never on a look at the interim results.'))
        parts.append(Facts([
            ('Stopping rule', str(seq.get('rule', '?'))),
            ('Against (A)', str(seq.get('against', '?'))),
            ('Decision', f'{seq.get("decision") or "none"} after {seq.get("pairs", "?")} of '
                         f'{seq.get("max_pairs", "?")} episode pairs'),
            ('Discordant pairs', f'A only {seq.get("a_only", "?")}, B only {seq.get("b_only", "?")}'),
            ('Episodes saved', f'{seq.get("saved_episodes", "?")} against the fixed design of '
                               f'{seq.get("max_pairs", "?")}')]))
    if not parts:
        return None
    return Section('comparison', 'Is the difference real? Paired comparison and sequential test', parts)


def async_latency_section(bench: dict | None, run_dir: Path) -> Section | None:
    """Issue 15's plot: success and mean jerk against injected latency per stitching policy."""
    if bench is None:
        return None
    source = bench['source']
    try:
        where = source.relative_to(run_dir)
    except ValueError:
        where = source
    rows = []
    for mode, by_latency in bench['results'].items():
        for ms, r in by_latency.items():
            rows.append([mode, f'{ms:g}', _count(r['n'], r['successes']),
                         '[{:.2f}, {:.2f}]'.format(*r['ci95']),
                         '—' if r['hold_share'] is None else f'{r["hold_share"]:.1%}',
                         '—' if r['mean_jerk'] is None else f'{r["mean_jerk"]:.3f}',
                         '—' if r['max_jerk'] is None else f'{r["max_jerk"]:.2f}'])
    return Section('async_latency', 'Success and jerk against injected inference latency', [
        Text(f'From {where} (benchmarks/bench_async_latency.py): checkpoint '
             f'{bench.get("checkpoint", "?")}, {bench.get("episodes_per_task", "?")} episodes per task '
             f'on {", ".join(bench.get("tasks") or []) or "?"}, the same seeds at every latency; '
             'jerk: change of commanded joint velocity between ticks (rad/s per tick), the mean over '
             'ticks of the largest joint\'s, and its maximum.'),
        Figure('async_latency', 'Success and mean jerk against injected latency',
               async_latency_figure(bench)),
        Table(['stitching', 'latency (ms)', 'success', '95% CI', 'hold ticks', 'mean jerk',
               'max jerk'], rows, css='plain')])
