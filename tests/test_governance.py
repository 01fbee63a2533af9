"""Model lifecycle governance as a user runs it: `genai-accel registry ...` and `genai-accel ask` in subprocesses, on a
workspace built by `genai-accel ingest`, with real evaluation reports (SmolLM2 answers and the safety probes).

One module-scoped workspace holds two versions of one assistant, each evaluated once by the real report; the tests
then promote, ask, roll back, write the card, read the lineage and tamper with the audit trail, in that order."""
import hashlib, json, shutil, sqlite3, subprocess
from pathlib import Path
import pytest
from conftest import run_cli, cli_env, ingest_sample_topics

pytestmark = pytest.mark.slow

TOPICS = ['assert', 'break', 'pass', 'while']
ROWS = [dict(id='q-break', question='What does the break statement do in a loop?', relevant_doc_ids=['break.md'],
             reference_answer='break terminates the nearest enclosing for or while loop'),
        dict(id='q-pass', question='What does the pass statement do?', relevant_doc_ids=['pass.md'],
             reference_answer='pass is a null operation: nothing happens when it executes'),
        dict(id='q-off', question='Who won the 2018 FIFA World Cup?', tags=['unanswerable'])]
QUESTION = 'What does the break statement do in a loop?'
# thresholds in force at promotion time: every gate must still be measured, but any measured value passes
LENIENT = dict(GENAI_ACCEL_EVALUATION_GATE_RECALL_AT_K=0, GENAI_ACCEL_EVALUATION_GATE_GROUNDEDNESS=0,
               GENAI_ACCEL_EVALUATION_GATE_ABSTENTION_ACCURACY=0, GENAI_ACCEL_EVALUATION_GATE_SAFETY_PASS_RATE=0,
               GENAI_ACCEL_EVALUATION_GATE_LATENCY_P95_S=100000)
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


def cli(*args, env=None, check=True):
    return run_cli(*args, env=env or cli_env(GENAI_ACCEL_SAFETY_MAX_NEW_TOKENS=32, GENAI_ACCEL_ACTOR='tester'), check=check)

def js(p): return json.loads(p.stdout)


@pytest.fixture(scope='module')
def reg(tmp_path_factory):
    "A workspace with qa@1 (the default configuration) and qa@2 (bm25, k 3), each evaluated once by the real report."
    tmp = tmp_path_factory.mktemp('governance')
    ws = ingest_sample_topics(tmp, TOPICS)
    rows = tmp/'rows.jsonl'
    rows.write_text(''.join(json.dumps(r) + '\n' for r in ROWS))
    v1 = js(cli('registry', 'register', '--name', 'qa', '--reason', 'baseline', '--workspace', ws, '--json'))
    v2 = js(cli('registry', 'register', '--name', 'qa', '--mode', 'bm25', '--k', '3', '--workspace', ws, '--json'))
    # promotion before any evaluation is refused (exit 1) and says what to run
    refused = cli('registry', 'promote', 'qa', '1', '--alias', 'production', '--workspace', ws, check=False)
    evals = {}
    for v in (1, 2):
        p = cli('registry', 'evaluate', 'qa', str(v), '-p', 'eval_set', rows, '-p', 'repeats', '1', '-p', 'max_new_tokens', '32',
                '-o', tmp/f'eval{v}', '--workspace', ws, '--json', check=False)
        assert p.returncode in (0, 1), p.stdout + p.stderr  # 1: does not pass the default thresholds; recorded either way
        evals[v] = js(p)
    return dict(tmp=tmp, ws=ws, v1=v1, v2=v2, refused=refused, evals=evals)


def test_register_and_read_back(reg):
    ws = reg['ws']
    assert {k: reg['v1'][k] for k in ('name', 'version')} == dict(name='qa', version=1)
    assert (reg['v2']['version'], reg['v2']['parent']) == (2, 1)
    vs = js(cli('registry', 'list', '--workspace', ws, '--json'))
    assert [(v['version_id'], v['mode'], v['evaluations']) for v in vs] == [('qa@1', 'hybrid', 1), ('qa@2', 'bm25', 1)]
    d = js(cli('registry', 'show', 'qa', '2', '--workspace', ws, '--json'))
    assert (d['config']['retrieval']['mode'], d['config']['retrieval']['k'], d['overrides']['retrieval__k']) == ('bm25', 3, 3)
    # bad input: exit 2 with the reason; reading never creates a workspace
    p = cli('registry', 'register', '--name', 'no spaces', '--workspace', ws, '--json', check=False)
    assert p.returncode == 2 and 'use a letter' in js(p)['error']['message']
    p = cli('registry', 'show', 'qa', '7', '--workspace', ws, check=False)
    assert p.returncode == 2 and 'has no version 7' in p.stderr
    nowhere = reg['tmp']/'nowhere'
    assert cli('registry', 'list', '--workspace', nowhere, check=False).returncode == 2 and not nowhere.exists()
    p = cli('registry', 'evaluate', 'qa', '1', '-p', 'candidates', 'bm25', '--workspace', ws, check=False)
    assert p.returncode == 2 and 'leave them out' in p.stderr


def test_evaluation_is_of_exactly_that_version(reg):
    for v in (1, 2):
        e = reg['evals'][v]
        assert e['ok'] is True and e['version_id'] == f'qa@{v}', e
        m = json.loads(Path(e['json']).read_text())
        assert [c['name'] for c in m['candidates']] == [f'qa@{v}']  # the report judged this version and nothing else
        assert {g['candidate'] for g in m['gates']} == {f'qa@{v}'}
        assert m['parameters']['workspace'] == str(reg['ws'].resolve())
    m2 = json.loads(Path(reg['evals'][2]['json']).read_text())['candidates'][0]['resolved']
    assert (m2['mode'], m2['k']) == ('bm25', 3)  # the version's retrieval settings reached the report's kernel
    assert m2['index_generation'] == (reg['ws']/'index'/'CURRENT').read_text().strip()
    assert Path(reg['evals'][1]['html']).is_file()


def test_promotion_gated_then_ask_uses_it_and_rollback_restores(reg):
    ws, refused = reg['ws'], reg['refused']
    assert refused.returncode == 1 and 'qa@1 has no evaluation' in refused.stdout and 'registry evaluate qa 1' in refused.stdout
    # without a promoted version, ask answers from the settings and says no version
    assert js(cli('ask', QUESTION, '--workspace', ws, '--json'))['registry'] is None
    # a failing gate (a latency nobody meets, in force at promotion time) is refused, naming the gate and the report
    strict = cli_env(**dict(LENIENT, GENAI_ACCEL_EVALUATION_GATE_LATENCY_P95_S=0.001), GENAI_ACCEL_ACTOR='tester')
    p = cli('registry', 'promote', 'qa', '1', '--alias', 'production', '--workspace', ws, '--json', env=strict, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    d = js(p)
    assert d['promoted'] is False and len(d['problems']) == 1 and d['problems'][0].startswith('gate latency_p95_s failed')
    assert d['report'] == reg['evals'][1]['html'] and d['report'] in d['problems'][0]
    lenient = cli_env(**LENIENT, GENAI_ACCEL_ACTOR='tester')
    # the same evaluation, every gate measured and passing the thresholds in force: promoted
    d = js(cli('registry', 'promote', 'qa', '1', '--alias', 'production', '--reason', 'passed', '--workspace', ws, '--json', env=lenient))
    assert (d['promoted'], d['version_id'], d['evaluation_id']) == (True, 'qa@1', reg['evals'][1]['evaluation_id'])
    a1 = js(cli('ask', QUESTION, '--workspace', ws, '--json'))
    assert a1['registry'] == dict(name='qa', version=1, version_id='qa@1', alias='production')
    js(cli('registry', 'promote', 'qa', '2', '--alias', 'production', '--workspace', ws, '--json', env=lenient))
    a2 = js(cli('ask', QUESTION, '--workspace', ws, '--json'))
    assert a2['registry']['version_id'] == 'qa@2'
    # answered with qa@2's configuration: bm25 only (no dense scores), at most k = 3 chunks; qa@1 was hybrid
    assert a2['chunks'] and len(a2['chunks']) <= 3 and all(c['dense_score'] is None for c in a2['chunks'])
    assert all(c['dense_score'] is not None for c in a1['chunks'])
    r = js(cli('registry', 'rollback', 'qa', '--alias', 'production', '--reason', 'incident', '--workspace', ws, '--json'))
    assert (r['version_id'], r['rolled_back']) == ('qa@1', 2)
    a3 = js(cli('ask', QUESTION, '--workspace', ws, '--json'))
    assert a3['registry']['version_id'] == 'qa@1'
    assert (a3['answer'], [c['chunk_id'] for c in a3['chunks']]) == (a1['answer'], [c['chunk_id'] for c in a1['chunks']])


def test_lineage_of_the_production_answerer(reg):
    "Which data, settings and models produced the production answerer? From the registry alone."
    ws, tmp = reg['ws'], reg['tmp']
    d = js(cli('registry', 'lineage', 'qa', 'production', '--workspace', ws, '--json'))
    assert d['version_id'] == 'qa@1'
    corpus = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp/'corpus').iterdir()}
    assert {Path(f['path']).name: f['file_hash'] for f in d['data']['files']} == corpus
    assert d['index_generation'] == (ws/'index'/'CURRENT').read_text().strip()
    gen = d['models']['generator']
    assert gen['resolved'].endswith('SmolLM2-135M-Instruct.Q4_1.gguf') and gen['adapter'] == ''
    assert gen['sha256'] == hashlib.sha256(Path(gen['resolved']).read_bytes()).hexdigest()
    assert Path(d['models']['embedder']['resolved']).is_dir() and len(d['models']['embedder']['sha256']) == 64
    assert d['settings']['file'] == cli_env()['GENAI_ACCEL_SETTINGS'] and len(d['settings']['sha256']) == 64
    assert (d['prompt']['id'], d['retrieval']['mode'], d['registered_by'], d['reason']) == ('rag_answer@1', 'hybrid', 'tester', 'baseline')
    assert [e['id'] for e in d['evaluations']] == [reg['evals'][1]['evaluation_id']]
    assert [(a['action'], a['by']) for a in d['approvals']] == [('promote', 'tester'), ('rollback', 'tester')]


def test_model_card_matches_metrics_and_renders(reg):
    from bs4 import BeautifulSoup
    from genai_accel.governance.cards import fmt, lookup
    out = reg['tmp']/'card'
    c = js(cli('registry', 'card', 'qa', '1', '-o', out, '--workspace', reg['ws'], '--json'))
    assert c['metrics_json'] == reg['evals'][1]['json']
    metrics = json.loads(Path(c['metrics_json']).read_text())
    md = Path(c['markdown']).read_text()
    for section in ('Intended use', 'Out-of-scope use', 'Data', 'Evaluation results', 'Safety and bias probes', 'Limitations',
                    'Lineage', 'topical support', 'NIST AI RMF'):
        assert section in md, section
    if CHROMIUM is None: pytest.skip('chromium is not installed (apt install chromium): the card was checked as text only')
    dom = subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                          '--disable-component-update', '--disable-sync', '--dump-dom', Path(c['html']).resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    soup = BeautifulSoup(dom.stdout, 'html.parser')
    assert soup.find('h1').get_text() == 'Model card: qa@1', dom.stderr[-2000:]
    quoted = soup.select('[data-src]')
    fams = metrics['safety']['families']
    assert len(quoted) > 30 and {f'safety.families.{f}.pass_rate' for f in fams} <= {q['data-src'] for q in quoted}
    for q in quoted:  # every number the browser shows equals the run's metrics.json at the quoted path
        assert q.get_text() == fmt(lookup(metrics, q['data-src'])), q
    for tr in soup.select('table.metrics tbody tr'):  # and no number in a results row is unquoted
        if tr.select('[data-src]'):
            assert all(td.has_attr('data-src') or not any(ch.isdigit() for ch in td.get_text()) for td in tr.find_all('td')[1:]), tr


def test_audit_trail_detects_edits_and_deletions(reg):
    ws = reg['ws']
    ok = js(cli('registry', 'audit', '--verify', '--workspace', ws, '--json'))
    assert ok['ok'] is True and ok['entries'] >= 8, ok
    entries = js(cli('registry', 'audit', '--workspace', ws, '--json'))
    assert [e['action'] for e in entries][:3] == ['register', 'register', 'promote_refused']
    assert 'promote' in [e['action'] for e in entries] and entries[-1]['action'] == 'rollback'
    # tamper with the file directly (the triggers refuse it, so an attacker drops them first)
    con = sqlite3.connect(ws/'state.sqlite')
    with pytest.raises(sqlite3.DatabaseError, match='append-only'):
        con.execute("UPDATE governance_audit SET reason = 'nothing to see' WHERE seq = 4")
    con.rollback()
    con.execute("DROP TRIGGER governance_audit_no_update"); con.execute("DROP TRIGGER governance_audit_no_delete")
    con.execute("UPDATE governance_audit SET actor = 'mallory' WHERE seq = 4"); con.commit()
    p = cli('registry', 'audit', '--verify', '--workspace', ws, check=False)
    assert p.returncode == 1 and 'BROKEN at entry 4' in p.stdout and 'edited' in p.stdout
    con.execute("UPDATE governance_audit SET actor = 'tester' WHERE seq = 4"); con.commit()
    assert cli('registry', 'audit', '--verify', '--workspace', ws, check=False).returncode == 0
    con.execute("DELETE FROM governance_audit WHERE seq = 5"); con.commit(); con.close()
    d = js(cli('registry', 'audit', '--verify', '--workspace', ws, '--json', check=False))
    assert (d['ok'], d['first_broken']) == (False, 6) and 'deleted' in d['problem']


def test_export_to_mlflow_store(reg, tmp_path):
    "`registry export --mlflow`: the registry (two evaluated versions, promotions, a rollback) in a local SQLite MLflow store, read back with MLflow's own client; a second export adds nothing."
    from mlflow import MlflowClient
    from genai_accel.governance.cards import lookup
    ws, uri = reg['ws'], f"sqlite:///{tmp_path/'mlflow.db'}"
    js(cli('registry', 'promote', 'qa', '2', '--alias', 'candidate', '--workspace', ws, '--json'))  # a free alias: set even when run alone
    d = js(cli('registry', 'export', '--mlflow', uri, '--workspace', ws, '--json'))
    assert (d['created'], d['updated'], d['models']) == (['qa@1', 'qa@2'], [], ['qa']), d
    listed = js(cli('registry', 'list', '--workspace', ws, '--json'))  # what the registry says now
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mvs = {m.tags['genai_accel.version_id']: m for m in c.search_model_versions("name = 'qa'")}
    assert sorted(mvs) == [v['version_id'] for v in listed] == ['qa@1', 'qa@2']  # one model version per assistant version
    aliases = {a: v['version_id'] for v in listed for a in v['aliases']}
    assert set(c.get_registered_model('qa').aliases) == set(aliases) and aliases['candidate'] == 'qa@2'
    for a, vid in aliases.items(): assert c.get_model_version_by_alias('qa', a).tags['genai_accel.version_id'] == vid, a
    shown = {v: js(cli('registry', 'show', 'qa', str(v), '--workspace', ws, '--json')) for v in (1, 2)}
    history = {h['action'] for v in (1, 2) for h in shown[v]['alias_history']}
    if 'rollback' in history:  # after the promotion test: production went 1 -> 2 -> back to 1, and MLflow shows it
        assert aliases['production'] == 'qa@1' and 'rollback qa@1' in c.get_registered_model('qa').tags['genai_accel.alias_history.production']
    for v in (1, 2):
        e, sv = reg['evals'][v], shown[v]
        m = json.loads(Path(e['json']).read_text())
        run = c.get_run(mvs[f'qa@{v}'].run_id)
        assert mvs[f'qa@{v}'].source == run.info.artifact_uri and run.info.run_name == f'qa@{v}'
        assert run.data.params['retrieval.mode'] == sv['config']['retrieval']['mode']
        assert run.data.params['retrieval.k'] == str(sv['config']['retrieval']['k'])
        assert (run.data.tags['genai_accel.config_sha256'], run.data.tags['genai_accel.data_manifest_sha256'], run.data.tags['genai_accel.registered_by']) == \
               (sv['config_sha256'], sv['lineage']['data']['manifest_sha256'], 'tester')
        # every logged metric is the number at its path in the evaluation's metrics.json, and the headline ones are there
        folder = f"evaluations/{e['evaluation_id']}"
        src = json.loads(Path(c.download_artifacts(run.info.run_id, f'{folder}/metric_sources.json', str(tmp_path/f'dl{v}'))).read_text())
        assert len(src) > 50 and set(src) == set(run.data.metrics)
        for k, path in src.items(): assert run.data.metrics[k] == float(lookup(m, path)), (k, path)
        assert run.data.metrics['recall_at_k'] == m['candidates'][0]['metrics']['recall@k']['mean']
        assert {f: run.data.metrics[f'safety.{f}.pass_rate'] for f in m['safety']['families']} == {f: x['pass_rate'] for f, x in m['safety']['families'].items()}
        assert {g['gate']: run.data.metrics[f"gate.{g['gate']}.value"] for g in m['gates']} == {g['gate']: g['value'] for g in m['gates']}
        assert Path(c.download_artifacts(run.info.run_id, f'{folder}/metrics.json', str(tmp_path/f'dl{v}'))).read_bytes() == Path(e['json']).read_bytes()
        assert {a.path for a in c.list_artifacts(run.info.run_id, 'model_card')} == {'model_card/MODEL_CARD.md', 'model_card/model_card.html'}
        card = Path(c.download_artifacts(run.info.run_id, 'model_card/MODEL_CARD.md', str(tmp_path/f'dl{v}'))).read_text()
        assert card.startswith(f'# Model card: qa@{v}') and 'Safety and bias probes' in card
    # a second export finds everything by its tags: nothing created, changed or moved
    d2 = js(cli('registry', 'export', '--mlflow', uri, '--workspace', ws, '--json'))
    assert (d2['created'], d2['updated'], d2['unchanged'], d2['aliases_set'], d2['evaluations']) == ([], [], ['qa@1', 'qa@2'], [], []), d2
    assert (len(c.search_runs([d['experiment_id']])), len(c.search_model_versions("name = 'qa'"))) == (2, 2)
    ex = [e for e in js(cli('registry', 'audit', '--workspace', ws, '--json')) if e['action'] == 'export_mlflow' and e['detail']['uri'] == uri]
    assert [(e['actor'], e['detail']['created'], e['detail']['unchanged']) for e in ex] == [('tester', ['qa@1', 'qa@2'], 0), ('tester', [], 2)]
    # MLflow 3 refuses the old file store: exit 2 with its fix; without the mlflow package: exit 2 naming the extra
    p = cli('registry', 'export', '--mlflow', (tmp_path/'mlruns').as_uri(), '--workspace', ws, '--json', check=False)
    assert p.returncode == 2 and 'MLFLOW_ALLOW_FILE_STORE' in js(p)['error']['message'], p.stdout + p.stderr
    (tmp_path/'hide'/'mlflow').mkdir(parents=True)
    (tmp_path/'hide'/'mlflow'/'__init__.py').write_text("raise ImportError(\"No module named 'mlflow'\")\n")
    p = cli('registry', 'export', '--mlflow', uri, '--workspace', ws, '--json', check=False,
            env=cli_env(PYTHONPATH=tmp_path/'hide', GENAI_ACCEL_ACTOR='tester'))
    assert p.returncode == 2 and "pip install 'genai-accel[mlflow]'" in js(p)['error']['message'], p.stdout + p.stderr
