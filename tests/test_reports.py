"""Report runs through papermill: the readiness template end to end, a failing template, and the HTML in a browser.

The readiness run loads the real embedder and generator in a fresh kernel (about 30 s on an idle 2-core
machine, several minutes when other CPU work competes); it runs once per session and is shared by the tests.
"""
import json, os, re, shutil, subprocess
from pathlib import Path

import nbformat
import pytest

from genai_accel.reports import ReportError, parse_report_params, run_report

FIXTURES = Path(__file__).parent/'fixtures'
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND']


def _strict_json(path):
    "Parse JSON refusing Infinity/NaN, which other JSON readers reject."
    def bad(c): raise ValueError(f"{path} holds {c}, which is not valid JSON")
    return json.loads(Path(path).read_text(), parse_constant=bad)


@pytest.fixture(scope='module')
def readiness(tmp_path_factory):
    out = tmp_path_factory.mktemp('readiness')
    # text values, as the CLI passes them: run_report converts them to the declared types
    r = run_report('readiness', {'quick': 'true', 'expected_users': '5', 'target_latency_s': '30',
                                 'sample_size': '10', 'seed': '3'}, out)
    return r, out


def test_readiness_artefacts(readiness):
    r, out = readiness
    assert r.ok, r.error
    assert (r.notebook, r.html, r.json) == (out/'readiness.ipynb', out/'readiness.html', out/'readiness.json')
    nb = nbformat.read(r.notebook, as_version=4)
    assert nb.metadata.papermill.parameters['quick'] is True
    assert nb.metadata.papermill.parameters['expected_users'] == 5
    assert any('injected-parameters' in c.metadata.get('tags', []) for c in nb.cells)
    errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []) if o.output_type == 'error']
    assert errors == []


def test_readiness_json(readiness):
    r, _ = readiness
    rep = _strict_json(r.json)
    infra = rep['infrastructure']
    assert 0 <= rep['overall_score'] <= 100
    dims = {f'infrastructure.{k}' for k in ('latency', 'capacity', 'memory', 'disk', 'index_build')}
    assert dims <= set(rep['dimensions'])
    assert all(0 <= v <= 100 for v in rep['dimensions'].values())
    for k, v in infra['scores'].items():
        assert rep['dimensions'][f'infrastructure.{k}'] == v['score'] and v['rule']
    assert rep['overall_score'] == pytest.approx(sum(rep['sections'].values()) / len(rep['sections']), abs=0.05)
    # what the report says about the machine agrees with direct checks
    assert infra['machine']['cpu']['logical_cores'] == os.cpu_count()
    meminfo = Path('/proc/meminfo').read_text()
    mem_total_gb = int(re.search(r'MemTotal:\s+(\d+)', meminfo).group(1)) / 2**20
    assert infra['machine']['memory']['host_total_gb'] == pytest.approx(mem_total_gb, rel=0.01)
    gen = infra['benchmarks']['generation']
    assert gen['decode_tokens'] > 0 and gen['decode_tokens_per_s'] > 0
    cap = infra['capacity']
    assert cap['service_time_s'] == pytest.approx(sum(cap['service_parts_s'].values()), abs=2e-3)
    assert {a['name'] for a in infra['assumptions']} >= {'costs.cpu_watts', 'capacity.think_time_s'}
    assert rep['parameters']['seed'] == 3


def test_readiness_html(readiness):
    r, _ = readiness
    html = r.html.read_text()
    # no code cells: source lines of the template must not appear
    for src in ('assess_infrastructure(', 'import datetime', 'show(tables', 'data_path: str'):
        assert src not in html, src
    assert 'Infrastructure readiness' in html and 'M/M/c' in html
    assert html.count('<table') >= 6
    cpu_model = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines()
                      if l.startswith('model name')), None)
    if cpu_model: assert cpu_model in html
    assert re.search(r'<img[^>]+src="data:image/png;base64,', html), 'capacity plot missing'
    # renders offline: nothing is fetched from the network
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html)


def test_failing_template_still_gives_html(tmp_path):
    r = run_report(FIXTURES/'failing_report.ipynb', {'rows': '2'}, tmp_path)
    assert not r.ok
    assert 'RuntimeError' in r.error and 'planted failure' in r.error
    assert r.json is None and r.notebook.exists()
    html = r.html.read_text()
    assert 'planted failure' in html            # the error is shown to the reader
    assert 'fixture row 1' in html              # so is what ran before it
    assert 'raise RuntimeError' not in html.split('Traceback')[0]  # no code cells before the traceback


def test_parameters_are_checked():
    with pytest.raises(ReportError, match='unknown parameter sample_sise for report readiness; known: data_path'):
        parse_report_params('readiness', [('sample_sise', '3')])
    with pytest.raises(ReportError, match='sample_size'):
        parse_report_params('readiness', [('sample_size', 'three')])
    assert parse_report_params('readiness_assessment', [('quick', 'yes'), ('target_latency_s', '2')]) == \
        {'quick': True, 'target_latency_s': 2.0}


@pytest.mark.skipif(CHROMIUM is None, reason='chromium not installed (apt-get install -y chromium)')
def test_html_renders_in_chromium(readiness, tmp_path):
    r, _ = readiness
    url = r.html.resolve().as_uri()
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, '--virtual-time-budget=5000', '--dump-dom', url],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'Infrastructure readiness' in dom and '<table' in dom and 'data:image/png;base64' in dom
    shot = Path(os.environ.get('GENAI_ACCEL_SCREENSHOT_DIR', tmp_path))/'readiness.png'
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, '--window-size=1280,2400', '--hide-scrollbars',
                    f'--screenshot={shot}', url], capture_output=True, timeout=120)
    assert shot.exists() and shot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert shot.stat().st_size > 50_000  # a blank page is a few KB


def test_readiness_for_described_target(tmp_path):
    "The CLI assesses a described machine: its figures, projections and assumptions reach the JSON and the HTML."
    from conftest import run_cli
    out = tmp_path/'target'
    run_cli('report', 'readiness', '-p', 'target_machine', 'name=gpu server,cpu_cores=16,memory_gb=64,gpu_count=1,gpu_name=L4',
            '-p', 'quick', 'true', '-p', 'include_generator', 'false', '-p', 'expected_users', '50', '-o', out)
    rep = _strict_json(out/'readiness.json')
    infra = rep['infrastructure']
    assert rep['parameters']['target_machine'].startswith('name=gpu server')
    assert infra['target']['cpu_cores'] == 16 and infra['machine']['memory']['total_gb'] == 64
    assert infra['machine']['gpu']['gpus'][0]['name'] == 'L4'
    here = infra['measured_here']['benchmarks']['embedding']
    f = infra['measured_here']['projection']['embedding_factor']
    assert infra['benchmarks']['embedding']['chunks_per_s'] == pytest.approx(here['chunks_per_s'] * f, rel=0.01)
    assert {'target.cpu_cores', 'target.disk_free_gb', 'capacity.gpu_speedup'} <= {a['name'] for a in infra['assumptions']}
    html = (out/'readiness.html').read_text()
    assert 'gpu server (described)' in html and '(projected)' in html and 'not a measurement' in html

    bad = run_cli('report', 'readiness', '-p', 'target_machine', 'cpu_cores=16', '-p', 'quick', 'true',
                  '-p', 'include_generator', 'false', '-o', tmp_path/'bad', check=False)
    assert bad.returncode != 0
    assert 'memory_gb must be given' in (bad.stdout + bad.stderr)
