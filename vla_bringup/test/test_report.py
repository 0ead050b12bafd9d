"""The evaluation report (``vla report``) on a run directory built here from real files."""
import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from vla_bringup import cli
from vla_bringup.report import ReportError, write_report
from vla_bringup.report_inputs import load_metrics, load_results, load_run
from vla_bringup.report_sections import build_report
from vla_common.stats import rate_summary

TASKS = ('pick_red', 'pick_green', 'pick_blue', 'stack_green_on_red')
POLICY_SUCCESSES = {'pick_red': 18, 'pick_green': 15, 'pick_blue': 12, 'stack_green_on_red': 5}
BASELINE_SUCCESSES = {'pick_red': 20, 'pick_green': 19, 'pick_blue': 20, 'stack_green_on_red': 16}
N = 20


def results_json(name: str, successes: dict[str, int], latency_samples: list[float] | None,
                 videos: dict[tuple[str, int], str] | None = None) -> dict:
    """A results JSON in the DESIGN.md shape (what ``vla evaluate --json`` writes)."""
    episodes, tasks = [], {}
    for t, task in enumerate(TASKS):
        for i in range(N):
            success = i < successes[task]
            episode = {'task': task, 'seed': 1000 + i, 'success': success,
                       'reward': 1.0 if success else 0.3 + 0.01 * i, 'length': 120 + t * 30 + i,
                       'sim_time': 4.0 + i / 10, 'wall_time': 4.1 + i / 10, 'timed_out': False}
            if videos and (task, i) in videos:
                episode['video'] = videos[(task, i)]
            episodes.append(episode)
        rs = [e for e in episodes if e['task'] == task]
        entry = rate_summary(successes[task], N)
        entry.update(mean_reward=round(sum(e['reward'] for e in rs) / N, 4),
                     mean_length=round(sum(e['length'] for e in rs) / N, 2),
                     estops=1 if task == 'pick_blue' and name != 'expert' else 0, timeouts=0)
        tasks[task] = entry
    overall = rate_summary(sum(successes.values()), N * len(TASKS))
    overall['estops'] = sum(t['estops'] for t in tasks.values())
    latency = {}
    if latency_samples is not None:
        latency = {'p50': float(np.percentile(latency_samples, 50)),
                   'p99': float(np.percentile(latency_samples, 99)), 'samples': latency_samples}
    return {'policy': name, 'episodes_per_task': N, 'seed': 1000, 'tasks': tasks,
            'overall': overall, 'latency_ms': latency, 'control_rate_hz': 29.8,
            'episodes': episodes}


def write_gif(path: Path, color: tuple[int, int, int], frames: int = 6) -> None:
    """A small real animated GIF: a square moving across a coloured background."""
    images = np.zeros((frames, 48, 48, 3), np.uint8)
    images[:] = color
    for f in range(frames):
        images[f, 18:30, 4 + 6 * f:16 + 6 * f] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, images, extension='.gif', duration=100, loop=0)


def write_mp4(path: Path, frames: int = 8) -> None:
    """A small real MP4 (OpenCV's mp4v writer), a bright bar sweeping down."""
    cv2 = pytest.importorskip('cv2')
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 10, (64, 64))
    assert writer.isOpened()
    for f in range(frames):
        image = np.full((64, 64, 3), 60, np.uint8)
        image[8 * f:8 * f + 8] = (0, 200, 255)
        writer.write(image)
    writer.release()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / 'run'
    videos = run / 'eval' / 'videos'
    # named as `vla evaluate --videos` names them, and referenced by the episodes
    write_gif(videos / 'pick_red_success_seed1000.gif', (40, 160, 40))
    write_gif(videos / 'pick_red_failure_seed1019.gif', (160, 40, 40))
    write_gif(videos / 'baseline' / 'stack_green_on_red_success.gif', (40, 40, 160))  # by path only
    write_mp4(videos / 'policy_pick_green_failure.mp4')  # by name only
    rng = np.random.default_rng(0)
    latencies = [round(float(x), 3) for x in rng.gamma(4.0, 1.5, size=600)]
    policy = results_json('checkpoint:run/checkpoint', POLICY_SUCCESSES, latencies,
                          videos={('pick_red', 0): 'eval/videos/pick_red_success_seed1000.gif',
                                  ('pick_red', 19): 'eval/videos/pick_red_failure_seed1019.gif'})
    (run / 'eval' / 'policy.json').write_text(json.dumps(policy))
    (run / 'eval' / 'baseline.json').write_text(
        json.dumps(results_json('expert', BASELINE_SUCCESSES, None)))
    ckpt = run / 'checkpoint'
    ckpt.mkdir()
    # the layout of `vla train`'s log: every column in the header, empty cells where not logged
    lines = ['step,epoch,lr,loss,l1,mse,grad_norm,val_loss,samples_per_s,elapsed_s']
    for step in range(1, 301):
        val = f'{1.5 / (1 + step / 40):.4f}' if step % 50 == 0 else ''
        lines.append(f'{step},{step / 100:.3f},{1e-3 * min(1.0, step / 20):.6f},'
                     f'{2.0 / (1 + step / 30) + 0.05 * np.sin(step):.4f},,,0.5,{val},64.0,'
                     f'{step * 0.2:.1f}')
    (ckpt / 'metrics.csv').write_text('\n'.join(lines) + '\n')
    (run / 'stages.json').write_text(json.dumps({  # as `vla demo` writes it
        'collect': {'status': 'done', 'seconds': 412.5, 'command': 'vla collect --tasks all'},
        'train': {'status': 'done', 'seconds': 600.2, 'command': 'vla train --preset cpu'},
        'evaluate': {'status': 'done', 'seconds': 310.0, 'command': 'vla evaluate'},
        'report': {'status': 'running', 'command': f'vla report {run}'}}))
    return run


def data_uris(page: str, mime: str, prefix: str = '') -> list[bytes]:
    return [base64.b64decode(m) for m in
            re.findall(rf'{prefix}"data:{mime};base64,([A-Za-z0-9+/=]+)"', page)]


def md_row(md: str, first_cell: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f'| {first_cell} |'))
    return [c.strip() for c in line.strip('|').split('|')]


def test_report_html_is_self_contained_with_every_figure(run_dir: Path):
    html_path, md_path = write_report(run_dir)
    assert html_path == run_dir / 'report' / 'index.html' and md_path == run_dir / 'report' / 'report.md'
    page = html_path.read_text()
    pngs = data_uris(page, 'image/png', prefix='class="plot" alt="[^"]*" src=')
    assert len(pngs) == 3  # success bars, loss curves, latency histogram
    for png in pngs:
        image = Image.open(io.BytesIO(png))
        assert image.format == 'PNG' and image.width > 300 and image.height > 200
        assert np.asarray(image.convert('L')).std() > 5, 'a plot is not blank'
    gifs = data_uris(page, 'image/gif')
    assert len(gifs) == 3 and all(g.startswith(b'GIF89a') for g in gifs)
    assert Image.open(io.BytesIO(gifs[0])).n_frames == 6
    mp4s = data_uris(page, 'video/mp4', prefix='<video src=')
    assert len(mp4s) == 1 and mp4s[0][4:8] == b'ftyp'
    poster = Image.open(io.BytesIO(data_uris(page, 'image/png', prefix='poster=')[0]))
    assert poster.size == (64, 64)  # the middle frame of the video, shown before it plays
    assert 'pick_green: VLA policy failure' in page and 'browsers may not play it' in page
    assert 'src="http' not in page and 'src="../' not in page  # nothing outside the page
    assert {p.name for p in (run_dir / 'report' / 'figures').iterdir()} == \
        {'success.png', 'loss.png', 'latency.png'}
    for task in TASKS:
        assert f'<td>{task}</td>' in page
    assert 'pick_red: VLA policy success, seed 1000' in page
    assert 'pick_red: VLA policy failure, seed 1019' in page
    assert 'stack_green_on_red: scripted baseline success' in page
    assert 'metrics.csv' in page and '<td>collect</td><td>412.5</td><td>done</td><td>vla collect --tasks all</td>' in page
    assert '<td>report</td><td>—</td><td>running</td>' in page
    assert not list((run_dir / 'report').glob('.*')), 'no temporary files left behind'


def test_report_markdown_tables_have_the_numbers(run_dir: Path):
    _, md_path = write_report(run_dir)
    md = md_path.read_text()
    policy = json.loads((run_dir / 'eval' / 'policy.json').read_text())
    baseline = json.loads((run_dir / 'eval' / 'baseline.json').read_text())
    for task in TASKS:
        row = md_row(md, task)
        p, b = policy['tasks'][task], baseline['tasks'][task]
        assert row[1] == f'{POLICY_SUCCESSES[task]}/{N} ({POLICY_SUCCESSES[task] / N:.0%})'
        assert row[2] == f'[{p["ci95"][0]:.2f}, {p["ci95"][1]:.2f}]'
        assert row[3] == f'{BASELINE_SUCCESSES[task]}/{N} ({BASELINE_SUCCESSES[task] / N:.0%})'
        assert row[4] == f'[{b["ci95"][0]:.2f}, {b["ci95"][1]:.2f}]'
        assert row[5] == f'{p["mean_reward"]:.2f} / {b["mean_reward"]:.2f}'
        assert row[6] == f'{p["mean_length"]:.1f} / {b["mean_length"]:.1f}'
        assert row[7] == f'{p["estops"]} / {b["estops"]}'
    overall = md_row(md, 'overall')
    assert overall[1] == '50/80 (62%)' and overall[3] == '75/80 (94%)'
    mean = sum(t['mean_reward'] for t in policy['tasks'].values()) / len(TASKS)  # equal n
    assert overall[5].startswith(f'{mean:.2f} / ') and overall[7] == '1 / 0'
    ratio = (50 / 80) / (75 / 80)
    assert f'{ratio:.1%} of the scripted baseline\'s success rate' in md
    assert md_row(md, 'total')[1] == f'{412.5 + 600.2 + 310.0:.1f}'
    for figure in ('figures/success.png', 'figures/loss.png', 'figures/latency.png'):
        assert f']({figure})' in md and (md_path.parent / figure).is_file()
    assert '](../eval/videos/pick_red_success_seed1000.gif)' in md
    assert '300 logged rows up to step 300' in md and 'last validation loss 0.1' in md
    assert 'p50 ' in md and 'control rate 29.8 Hz' in md


def test_missing_inputs_are_stated_not_errors(tmp_path: Path):
    run = tmp_path / 'baseline_only'
    (run / 'eval').mkdir(parents=True)
    (run / 'eval' / 'baseline.json').write_text(json.dumps(results_json(
        'expert', BASELINE_SUCCESSES, None, videos={('pick_blue', 3): 'eval/videos/gone.gif'})))
    html_path, md_path = write_report(run)
    md = md_path.read_text()
    for message in ('No VLA policy results: eval/policy.json does not exist.',
                    'No training metrics: no metrics.jsonl or metrics.csv in checkpoint/',
                    'No stage wall times: stages.json does not exist.',
                    'No latency histogram', 'No rollout videos',
                    'scripted baseline episode pick_blue seed 1003 names video '
                    'eval/videos/gone.gif, which does not exist.'):
        assert message in md and message in html_path.read_text()
    assert 'no VLA policy results (eval/policy.json) to compare with' in md
    assert md_row(md, 'overall')[1] == '75/80 (94%)'
    assert html_path.read_text().count('<img class="plot"') == 1  # success bars only


def test_bad_run_directories_give_clear_errors(tmp_path: Path, capsys):
    with pytest.raises(ReportError, match='does not exist'):
        write_report(tmp_path / 'nope')
    (tmp_path / 'eval').mkdir()
    with pytest.raises(ReportError, match='no evaluation results .* policy.json and/or baseline.json'):
        write_report(tmp_path)
    (tmp_path / 'eval' / 'policy.json').write_text('{"tasks": {"pick_red": {"n": 3}}}')
    with pytest.raises(ReportError, match=r'policy.json: tasks.pick_red lacks successes'):
        write_report(tmp_path)
    (tmp_path / 'eval' / 'policy.json').write_text('{"tasks": ')
    with pytest.raises(ReportError, match='policy.json is not valid JSON'):
        load_results(tmp_path / 'eval' / 'policy.json')
    assert cli.main(['report', str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert 'vla report: error:' in err and 'policy.json is not valid JSON' in err
    assert not (tmp_path / 'report' / 'index.html').exists()


def test_metrics_jsonl_with_sparse_validation_and_bad_lines(tmp_path: Path):
    rows = [{'step': s, 'train_loss': 1.0 / s, 'lr': 1e-3, 'elapsed_s': s * 0.5} for s in range(1, 11)]
    rows[4]['val_loss'] = 0.3
    rows[9]['val_loss'] = None
    lines = [json.dumps(r) for r in rows] + ['not json', '[1, 2]', json.dumps({'step': 11})]
    (tmp_path / 'metrics.jsonl').write_text('\n'.join(lines) + '\n')
    metrics = load_metrics(tmp_path)
    assert metrics.source.name == 'metrics.jsonl' and metrics.skipped == 3
    assert [s for s, _ in metrics.train] == list(range(1, 11)) and metrics.val == [(5, 0.3)]
    assert metrics.elapsed_s == 5.0
    (tmp_path / 'metrics.csv').write_text('step,train_loss,val_loss\n1,0.5,\n2,,0.4\nx,1,1\n')
    metrics = load_metrics(tmp_path)  # the jsonl wins (it keeps every key); the csv is named
    assert metrics.source.name == 'metrics.jsonl' and metrics.ignored[0].name == 'metrics.csv'
    (tmp_path / 'metrics.jsonl').write_text('{"step": 1}\n')  # no loss in the jsonl: the csv
    metrics = load_metrics(tmp_path)
    assert metrics.source.name == 'metrics.csv' and metrics.ignored[0].name == 'metrics.jsonl'
    assert metrics.train == [(1, 0.5)] and metrics.val == [(2, 0.4)] and metrics.skipped == 1
    assert load_metrics(tmp_path / 'empty') is None


def test_large_media_are_linked_and_vla_report_command(run_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / 'elsewhere'
    assert cli.main(['report', str(run_dir), '--out', str(out), '--max-embed-mb', '0']) == 0
    assert 'report written to' in capsys.readouterr().err
    page = (out / 'index.html').read_text()
    assert not data_uris(page, 'image/gif')
    link = re.search(r'<img src="([^"]+pick_red_success_seed1000\.gif)"', page).group(1)
    assert (out / link).resolve() == (run_dir / 'eval' / 'videos' / 'pick_red_success_seed1000.gif')
    assert '(linked, 0.0 MB)' in page


@pytest.mark.slow
def test_html_renders_in_headless_chromium(run_dir: Path, tmp_path: Path):
    """Renders the page in Debian's chromium (skipped where it is not installed)."""
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    if chromium is None:
        pytest.skip('chromium is not installed (apt-get install chromium)')
    html_path, _ = write_report(run_dir)
    shot = tmp_path / 'report.png'
    subprocess.run([chromium, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                    '--no-first-run', '--disable-background-networking',
                    '--disable-component-update', '--disable-sync',
                    f'--user-data-dir={tmp_path / "profile"}', f'--screenshot={shot}',
                    '--window-size=1280,3000', html_path.as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = np.asarray(Image.open(shot).convert('RGB'))
    assert image.shape[:2] == (3000, 1280)
    # the plots' bar colours are on the page, i.e. the embedded PNGs were decoded and drawn
    blue = np.all(np.abs(image.astype(int) - (31, 119, 180)) < 8, axis=-1).sum()
    assert blue > 2000


def test_training_log_in_the_run_directory_itself(tmp_path: Path):
    """`vla train --out RUN_DIR` writes metrics.jsonl/csv beside checkpoint/, not inside it."""
    (tmp_path / 'eval').mkdir()
    (tmp_path / 'eval' / 'policy.json').write_text(
        json.dumps(results_json('checkpoint:x', POLICY_SUCCESSES, [5.0, 6.0, 7.0])))
    rows = [{'step': s, 'loss': 1.0 / s, 'val_loss': 0.5 if s == 20 else None} for s in range(1, 21)]
    (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    _, md_path = write_report(tmp_path)
    md = md_path.read_text()
    assert 'Training log from metrics.jsonl: 20 logged rows up to step 20' in md
    assert 'last train loss 0.05, last validation loss 0.5' in md
    assert (tmp_path / 'report' / 'figures' / 'loss.png').is_file()


def test_markdown_and_html_show_the_sections_of_one_model(run_dir: Path):
    """Both files render the one list of sections, in its order: a section added there is in both."""
    report = build_report(load_run(run_dir), created='2026-01-01T00:00:00+00:00')
    assert [s.id for s in report.sections] == \
        ['results', 'comparison', 'training', 'latency', 'stages', 'rollouts', 'notes']
    assert [f.name for f in report.figures] == ['success', 'loss', 'latency']
    html_path, md_path = write_report(run_dir)
    titles = [s.title for s in report.sections]
    assert re.findall(r'^## (.+)$', md_path.read_text(), re.M) == titles
    assert re.findall(r'<h2>(.+?)</h2>', html_path.read_text()) == titles
