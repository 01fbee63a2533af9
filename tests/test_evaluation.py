"""The evaluation harness as a user runs it: `genai-accel eval run` and `genai-accel report evaluation` in subprocesses
against a workspace built by `genai-accel ingest`, with the real embedder and generator."""
import json, re
from pathlib import Path
import pytest
from conftest import run_cli, run_json, ingest_sample_topics

TOPICS = ['assert', 'break', 'continue', 'for', 'pass', 'while', 'with', 'return']
ROWS = [dict(id='q-break', question='What does the break statement do in a loop?', relevant_doc_ids=['break.md'],
             reference_answer='break terminates the nearest enclosing for or while loop'),
        dict(id='q-pass', question='What does the pass statement do?', relevant_doc_ids=['pass.md'],
             reference_answer='pass is a null operation: nothing happens when it executes'),
        dict(id='q-assert', question='How do assert statements behave when optimization is requested?',
             relevant_doc_ids=['assert.md']),
        dict(id='q-off', question='Who won the 2018 FIFA World Cup?', tags=['unanswerable'])]

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('evaluation')
    ingest_sample_topics(tmp, TOPICS)
    rows = tmp/'rows.jsonl'
    rows.write_text(''.join(json.dumps(r) + '\n' for r in ROWS))
    return tmp/'ws', rows


def test_eval_run_compares_candidates_and_resumes(workspace, tmp_path):
    ws, rows = workspace
    args = ('eval', 'run', rows, '--candidate', 'hybrid', '--candidate', 'mode=bm25', '--repeats', '1',
            '--max-new-tokens', '48', '--workspace', ws, '--out', tmp_path/'run')
    p = run_cli(*args, '--json', check=False)
    assert p.returncode in (0, 1), p.stderr[-2000:]
    d = json.loads(p.stdout)
    assert [c['name'] for c in d['candidates']] == ['hybrid', 'mode=bm25']
    for c in d['candidates']:
        assert c['counts']['rows'] == len(ROWS) and c['counts']['ok'] + c['counts']['failed'] == len(ROWS)
        assert sum(c['diagnosis'].values()) == len(ROWS)
        r = c['metrics']['recall@k']
        assert r['n'] == 3 and 0 <= r['mean'] <= 1  # three rows carry relevance labels
    # exit code follows the gates in the JSON
    assert (p.returncode == 1) == (not d['gates_passed'])
    assert (tmp_path/'run'/'metrics.json').exists()
    lines = (tmp_path/'run'/'rows.jsonl').read_text().splitlines()
    assert len(lines) == 2 * len(ROWS)
    # the same command again answers nothing anew: every row comes from the cache, with the same numbers
    again = json.loads(run_cli(*args, '--json', check=False).stdout)
    assert all(c['counts']['cached'] == len(ROWS) and c['counts']['generated'] == 0 for c in again['candidates'])
    assert [c['metrics']['token_f1']['mean'] for c in again['candidates']] == [c['metrics']['token_f1']['mean'] for c in d['candidates']]


def test_eval_run_bad_input(workspace, tmp_path):
    ws, rows = workspace
    bad = tmp_path/'bad.jsonl'
    bad.write_text('{"id": "a", "question": "ok?"}\n{not json\n')
    p = run_cli('eval', 'run', bad, '--workspace', ws, check=False)
    assert p.returncode == 2 and 'bad.jsonl' in p.stderr and 'line 2' in p.stderr
    p = run_cli('eval', 'run', rows, '--candidate', 'mode=fuzzy,x=1', '--workspace', ws, check=False)
    assert p.returncode == 2 and 'unknown key' in p.stderr


def test_report_evaluation(workspace, tmp_path):
    "The report end to end with its generated eval set and the safety probes; gates decide the exit code."
    ws, _ = workspace
    out = tmp_path/'report'
    lenient = ['-p', 'gate_recall_at_k', '0', '-p', 'gate_groundedness', '0', '-p', 'gate_abstention_accuracy', '0',
               '-p', 'gate_safety_pass_rate', '0', '-p', 'gate_latency_p95_s', '100000']
    p = run_cli('report', 'evaluation', '--workspace', ws, '-p', 'synthetic_questions', '3', '-p', 'repeats', '2',
                '-p', 'max_new_tokens', '48', *lenient, '-o', out, check=False)
    assert p.returncode == 0, p.stdout + p.stderr  # every gate measured, and thresholds every configuration meets
    d = json.loads((out/'metrics.json').read_text())
    assert d['gates_passed'] is True
    assert {g['gate'] for g in d['gates']} == {'recall_at_k', 'groundedness', 'abstention_accuracy', 'safety_pass_rate',
                                               'latency_p95_s'}
    assert all(g['passed'] is True and g['value'] is not None and g['reason'] == '' for g in d['gates']), d['gates']
    assert d['eval_set']['synthetic'] == d['eval_set']['n_rows'] >= 3
    cand = d['candidates'][0]
    assert cand['counts']['rows'] == 2 * d['eval_set']['n_rows']  # every row, every repeat, accounted for
    assert all(len(m['repeat_means']) == 2 for m in cand['metrics'].values())
    fams = d['safety']['families']
    assert {'direct_injection', 'indirect_injection', 'leakage', 'pii', 'bias', 'toxicity'} <= set(fams)
    html = (out/'evaluation.html').read_text()
    assert 'Model evaluation' in html and 'Gates' in html and 'data:image/png;base64' in html
    assert 'ev.evaluate(' not in html and 'run_safety_probes(' not in html  # no code cells: template source is absent
    # the contradiction check is off by default: the report and metrics.json say it was not run, never that it passed
    assert d['contradiction_check']['ran'] is False and 'Contradiction check not run' in html
    assert cand['metrics']['contradicted']['mean'] is None and 'Judge validation' in html
    # the same run (answers from the cache) with the safety probes off and a latency nobody meets: exit 1, and both
    # gates are named, the unmeasured one with its reason (fail closed)
    strict = run_cli('report', 'evaluation', '--workspace', ws, '-p', 'synthetic_questions', '3', '-p', 'repeats', '2',
                     '-p', 'max_new_tokens', '48', *lenient, '-p', 'safety', 'false', '-p', 'gate_latency_p95_s', '0.001',
                     '-o', tmp_path/'strict', check=False)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    failed = [l for l in strict.stdout.splitlines() if 'gate FAILED' in l]
    assert len(failed) == 2, strict.stdout
    assert any('latency_p95_s' in l for l in failed)
    assert any('safety_pass_rate' in l and 'not measured' in l for l in failed)
    d2 = json.loads((tmp_path/'strict'/'metrics.json').read_text())
    assert d2['gates_passed'] is False and d2['safety'] is None
    html = (tmp_path/'strict'/'evaluation.html').read_text()
    assert 'All gates pass' not in html and '2 gate(s) FAIL' in html


def test_eval_run_unmeasured_gate_fails(workspace, tmp_path):
    "Rows without relevance labels: Recall@k cannot be measured, so its gate fails (exit 1) and says why."
    ws, _ = workspace
    rows = tmp_path/'unlabelled.jsonl'
    rows.write_text(''.join(json.dumps(dict(id=f'u{i}', question=q)) + '\n' for i, q in
                            enumerate(['What does the pass statement do?', 'What does break do in a loop?'])))
    p = run_cli('eval', 'run', rows, '--repeats', '1', '--max-new-tokens', '24', '--workspace', ws, '--out', tmp_path/'run',
                check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    line = next(l for l in p.stdout.splitlines() if 'recall_at_k' in l)
    assert 'FAIL' in line and 'not measured' in line and 'relevance labels' in line, line
    # the same under --json (rows from the answer cache): the gate is in the document, failed, with its reason
    j = run_cli('eval', 'run', rows, '--repeats', '1', '--max-new-tokens', '24', '--workspace', ws, '--out', tmp_path/'run',
                '--json', check=False)
    assert j.returncode == 1
    gates = {g['gate']: g for g in json.loads(j.stdout)['gates']}
    assert gates['recall_at_k']['passed'] is False and gates['recall_at_k']['value'] is None
    assert 'safety_pass_rate' not in gates  # eval run does not run the probes; the report gates safety


def test_report_evaluation_cell_error_still_writes_html(workspace, tmp_path):
    ws, _ = workspace
    out = tmp_path/'broken'
    p = run_cli('report', 'evaluation', '--workspace', ws, '-p', 'eval_set', tmp_path/'missing.jsonl', '-p', 'safety', 'false',
                '-o', out, check=False)
    assert p.returncode == 1
    html = (out/'evaluation.html').read_text()
    assert 'missing.jsonl' in html and 'Error' in html
