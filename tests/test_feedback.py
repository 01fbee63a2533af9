"""The feedback layer across process boundaries: interactions logged from the CLI, the library and the widget with
their ids; batch search; feedback from the CLI (one row, an import with good and bad rows); a corrected answer as a
regression row that fails before the fix and passes after it; the loop on a SciFact subset (slow)."""
import json, sys
from pathlib import Path
import pytest
from conftest import run_cli, run_json, ingest_sample_topics, SCIFACT, ROOT

TOPICS = ['assert', 'break', 'pass', 'function', 'return']


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    return ingest_sample_topics(tmp_path_factory.mktemp('fb'), TOPICS)


def _frame(ws):
    from genai_accel.core.config import Settings
    from genai_accel.feedback import interactions_frame
    return interactions_frame(ws, Settings(env={})).set_index('id')


def test_interactions_logged_from_cli_library_and_widget(workspace):
    from genai_accel.core.config import Settings
    from genai_accel.data.index import KnowledgeBase, ALL_ACCESS
    from genai_accel.data.store import default_caller, flush_interaction_logs
    from genai_accel.generative.rag import Assistant, Playground
    cli_search = run_json('search', 'What does the pass statement do?', '--workspace', workspace, '--groups', 'public')
    cli_ask = run_json('ask', 'Who won the 2018 World Cup?', '--workspace', workspace)  # abstains: no model load
    s = Settings(env={})
    lib = KnowledgeBase(workspace, s).search('How do I return a value?', groups=['public'], caller='libuser')
    pg = Playground(Assistant(workspace, s), question='What is the capital of Australia?')
    pg.on_ask()
    flush_interaction_logs()
    df = _frame(workspace)
    got = {i: (df.loc[i, 'kind'], df.loc[i, 'source'], df.loc[i, 'caller']) for i in
           (cli_search['interaction_id'], cli_ask['interaction_id'], lib.interaction_id, pg.answer.interaction_id)}
    assert list(got.values()) == [('search', 'cli', default_caller()), ('ask', 'cli', default_caller()),
                                  ('search', 'library', 'libuser'), ('ask', 'widget', default_caller())]
    assert df.loc[cli_search['interaction_id'], 'groups'] == ['public']
    assert [r['chunk_id'] for r in df.loc[cli_search['interaction_id'], 'results']] == [r['chunk_id'] for r in cli_search['results']]
    assert df.loc[cli_ask['interaction_id'], 'abstained'] == 1 and df.loc[cli_ask['interaction_id'], 'groups'] == 'ALL_ACCESS'


def test_batch_search_one_line_per_row(workspace, tmp_path):
    f = tmp_path/'q.jsonl'
    f.write_text('\n'.join(json.dumps(r) for r in [dict(id='a', query='break out of a loop'), dict(id=7, query='assert statement')]) + '\n')
    out = [json.loads(l) for l in run_cli('search', '--queries', f, '--json', '--workspace', workspace).stdout.splitlines()]
    assert [o['id'] for o in out] == ['a', 7] and all(o['interaction_id'] and o['results'] for o in out)
    assert len({o['interaction_id'] for o in out}) == 2
    assert set(_frame(workspace).index) >= {o['interaction_id'] for o in out}
    f.write_text('{"id": 1}\n')
    p = run_cli('search', '--queries', f, '--json', '--workspace', workspace, check=False)
    assert p.returncode == 2 and 'line 1' in json.loads(p.stdout)['error']['message']


def test_feedback_cli_add_and_import(workspace, tmp_path):
    hit = run_json('search', 'What does the pass statement do?', '--workspace', workspace)
    iid, chunk = hit['interaction_id'], hit['results'][0]['chunk_id']
    r = run_json('feedback', 'add', iid, '--up', '--rating', '5', '--relevant', chunk, '--workspace', workspace)
    assert r['status'] == 'stored'
    p = run_cli('feedback', 'add', 'no-such-id', '--rating', '3', '--workspace', workspace, check=False)
    assert p.returncode == 2 and 'unknown interaction_id' in p.stderr
    p = run_cli('feedback', 'add', iid, '--rating', '7', '--workspace', workspace, '--json', check=False)
    assert p.returncode == 2 and 'out of range' in json.loads(p.stdout)['error']['message']
    rows = [dict(interaction_id=iid, thumbs='down', correction='pass does nothing', event_id='x1'),
            dict(interaction_id=iid, rating=0), dict(interaction_id='ghost', rating=2),
            dict(interaction_id=iid, comment='c' * 5000), dict(interaction_id=iid, irrelevant_chunk_ids=[chunk], event_id='x2')]
    f = tmp_path/'fb.jsonl'
    f.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    p = run_cli('feedback', 'import', f, '--workspace', workspace, '--json', check=False)
    rep = json.loads(p.stdout)
    assert p.returncode == 1  # some rows were rejected; the good ones are stored all the same
    assert [r['status'] for r in rep['rows']] == ['stored', 'rejected', 'rejected', 'rejected', 'stored']
    assert all(r['reason'] for r in rep['rows'] if r['status'] == 'rejected')
    again = json.loads(run_cli('feedback', 'import', f, '--workspace', workspace, '--json', check=False).stdout)
    assert [r['status'] for r in again['rows']][::4] == ['duplicate', 'duplicate']  # event ids: stored once


def test_corrected_answer_becomes_a_regression_row(workspace, tmp_path):
    "A wrong answer, corrected by a user, becomes an eval row that the wrong model fails and the fixed model passes."
    from genai_accel.core.config import Settings
    from genai_accel.generative.generation import Generator, Generation
    from genai_accel.generative.rag import Assistant
    from genai_accel.data.index import ALL_ACCESS
    from genai_accel.data.store import record_feedback
    from genai_accel.assessment.evaluation import load_eval_set, reference_recall

    class Scripted(Generator):
        def __init__(self, text, s): super().__init__(s); self.text = text
        @property
        def model_id(self): return 'scripted'
        def count_tokens(self, t): return len(t.split()) if isinstance(t, str) else sum(len(m['content'].split()) + 3 for m in t)
        def _run(self, req, on_text, cancelled):
            return Generation(self.text, 10, len(self.text.split()), 'stop', 'scripted', dict(ttft_s=0.0, total_s=0.0))

    s = Settings(env={})
    q = 'What does the pass statement do?'
    wrong = Assistant(workspace, s, generator=Scripted('The pass statement exits the program immediately.', s))
    fixed = Assistant(workspace, s, generator=Scripted('The pass statement is a null operation: nothing happens when it runs.', s))
    a = wrong.ask(q, groups=ALL_ACCESS)
    assert not a.abstained and a.interaction_id
    record_feedback(workspace, dict(interaction_id=a.interaction_id, thumbs='down', correction='pass is a null operation; nothing happens'), settings=s)
    out = tmp_path/'regression.jsonl'
    d = run_json('improve', 'evalset', '--out', out, '--workspace', workspace)
    assert d['n_corrected'] >= 1
    row = [r for r in load_eval_set(out) if r.question == q][0]  # the evaluation harness reads the file
    assert 'regression' in row.tags and row.reference_answer == 'pass is a null operation; nothing happens'
    passes = lambda asst: reference_recall(asst.ask(row.question, groups=ALL_ACCESS, log=False).text, row.reference_answer) >= 0.6
    assert not passes(wrong) and passes(fixed)


@pytest.mark.slow
def test_feedback_loop_improves_held_out_ndcg_on_a_scifact_subset(tmp_path):
    "The benchmark's loop at --small size: feedback through the CLI only, held-out nDCG@10 (dense) must rise."
    if not (SCIFACT/'corpus.jsonl').exists(): pytest.skip(f"{SCIFACT} not present")
    import subprocess
    out = tmp_path/'res.json'
    p = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'bench_feedback_loop.py'), '--small', '--threads', '1', '--out', str(out)],
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    res = json.loads(out.read_text())
    loop = res['loop']
    assert loop['import_counts'].get('rejected', 0) == 0 and loop['feedback_rows'] > 20
    assert loop['held_out_after']['dense'] > loop['held_out_before']['dense'], loop
