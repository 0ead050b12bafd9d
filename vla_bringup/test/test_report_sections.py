"""The report's section model rendered through its two templates, and the latency bins."""
import base64
import re
from pathlib import Path

import numpy as np

from vla_bringup.report_figures import latency_bins
from vla_bringup.report_render import render_html, render_markdown
from vla_bringup.report_sections import (Bullets, Facts, Figure, Media, Report, Rollouts, Section,
                                         Table, Text)

PNG = b'\x89PNG\r\n\x1a\n' + b'\0' * 16  # the renderers only inline the bytes


def every_kind_of_part(tmp_path: Path) -> Report:
    gif = tmp_path / 'eval' / 'videos' / 'pick_red_success.gif'
    gif.parent.mkdir(parents=True, exist_ok=True)
    gif.write_bytes(b'GIF89a' + b'\0' * 10)
    return Report('run', tmp_path, '2026-01-01T00:00:00+00:00', 'It <worked> & "well"', [
        Section('added', 'A new section', [
            Text('a <b> paragraph'),
            Table(['name', 'a|b'], [['x', '1'], ['total', '2']], css='results'),
            Facts([('label', 'value')]),
            Figure('extra', 'Extra plot', PNG),
            Rollouts('pick_red', [Media('pick_red: success', gif)]),
            Bullets(['one', 'two'], css='notes')]),
        Section('empty', 'Nothing here', [Text('No data (see notes).')])])


def test_a_section_renders_in_markdown_from_its_parts(tmp_path: Path):
    md = render_markdown(every_kind_of_part(tmp_path), tmp_path / 'report')
    link = '../eval/videos/pick_red_success.gif'
    assert md == '\n'.join([
        '# Evaluation report: run', '',
        f'Run directory `{tmp_path}`, report written 2026-01-01T00:00:00+00:00.', '',
        '**It <worked> & "well"**', '',
        '## A new section', '',
        'a <b> paragraph', '',
        '| name | a\\|b |', '|---|---|', '| x | 1 |', '| total | 2 |', '',
        '- **label**: value', '',
        '![extra plot](figures/extra.png)', '',
        '### pick_red', '',
        f'- pick_red: success: [pick_red_success.gif]({link})<br>'
        f'![pick_red_success.gif]({link})', '',
        '- one', '- two', '',
        '## Nothing here', '',
        'No data (see notes).', '']), md


def test_a_section_renders_in_html_from_its_parts_escaped(tmp_path: Path):
    page = render_html(every_kind_of_part(tmp_path), tmp_path / 'report', max_bytes=10**6)
    assert page.startswith('<!DOCTYPE html>\n') and page.endswith('\n</body></html>\n')
    assert '<p class="summary">It &lt;worked&gt; &amp; &#34;well&#34;</p>' in page
    assert re.findall(r'<h2>(.+?)</h2>', page) == ['A new section', 'Nothing here']
    assert '<p>a &lt;b&gt; paragraph</p>' in page
    assert ('<table class="results"><thead><tr><th>name</th><th>a|b</th></tr></thead><tbody>'
            '<tr><td>x</td><td>1</td></tr><tr><td>total</td><td>2</td></tr></tbody></table>'
            in page)
    assert '<dl><dt>label</dt><dd>value</dd></dl>' in page
    png = re.search(r'<img class="plot" alt="Extra plot" src="data:image/png;base64,([^"]+)">',
                    page).group(1)
    assert base64.b64decode(png) == PNG
    assert re.search(r'<h3>pick_red</h3><div class="rollouts"><figure><img '
                     r'src="data:image/gif;base64,R0lGODlh[^"]*" alt="pick_red: success">'
                     r'<figcaption>pick_red: success</figcaption></figure></div>', page)
    assert '<ul class="notes">\n<li>one</li>\n<li>two</li>\n</ul>' in page
    assert '<p>No data (see notes).</p>' in page
    linked = render_html(every_kind_of_part(tmp_path), tmp_path / 'report', max_bytes=0)
    assert ('<img src="../eval/videos/pick_red_success.gif" alt="pick_red: success">'
            '<figcaption>pick_red: success (linked, 0.0 MB)</figcaption>' in linked)


def test_latency_bins_keep_the_clipped_samples_in_the_last_bin():
    # p99.9 of these is 30.167, and 30.167 * 60 / 60 rounds below it: bins built by that
    # product dropped the samples clipped to p99.9 from the histogram
    samples = [5.0, 6.0, 7.0, 9.5, 30.25]
    bins = latency_bins([samples])
    assert len(bins) == 61 and bins[0] == 0.0
    assert bins[-1] == np.percentile(samples, 99.9)
    counts, _ = np.histogram(np.minimum(samples, bins[-1]), bins)
    assert counts.sum() == len(samples) and counts[-1] == 1
    assert latency_bins([[0.0, 0.0]])[-1] == 1e-3  # never an empty range
