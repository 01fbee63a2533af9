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
def test_improve_embedder_learns_from_the_log_and_feedback_only(tmp_path):
    """`improve embedder` on a SciFact subset, through the CLI: its training data are exactly the logged searches'
    questions, the chunks the feedback marked relevant (positives) and the logged results above them or marked
    irrelevant (hard negatives); the relevance labels are deleted before it runs; the output folder loads with
    `--embedder DIR`; held-out nDCG@10 does not fall. (The held-out GAIN needs the full train split, ~650 feedback
    queries: benchmarks/bench_feedback_loop.py shows it; 32 queries and one epoch are too few to show it robustly.)"""
    if not (SCIFACT/'corpus.jsonl').exists(): pytest.skip(f"{SCIFACT} not present")
    import shutil
    sys.path.insert(0, str(ROOT/'benchmarks'))
    from harness import load_scifact, write_beir, small_subset
    from bench_feedback_loop import simulated_feedback, held_out_ndcg
    from genai_accel.data.store import open_store, chunk_corpus
    corpus, queries, qrels = small_subset(*load_scifact(SCIFACT), n_queries=48, n_docs=150)
    data = write_beir(tmp_path/'scifact', corpus, queries, qrels)
    qids = sorted(qrels); fb_q, test_q = qids[:32], qids[32:]
    ws = tmp_path/'ws'
    run_cli('ingest', data/'corpus.jsonl', '--workspace', ws, '--json', '--no-progress')
    shutil.rmtree(data/'qrels'); (data/'queries.jsonl').unlink()  # from here on nothing can read the labels from disk
    (tmp_path/'q.jsonl').write_text(''.join(json.dumps(dict(id=q, query=queries[q])) + '\n' for q in fb_q))
    lines = [json.loads(l) for l in run_cli('search', '--queries', tmp_path/'q.jsonl', '--json', '--workspace', ws).stdout.splitlines()]
    con = open_store(ws, readonly=True)
    first_chunk = {}
    for r in chunk_corpus(con): first_chunk.setdefault(r['doc_id'], r['chunk_id'])
    con.close()
    rows = simulated_feedback(lines, qrels, first_chunk)  # a user who knows each claim's source marks the results
    line0 = next(l for l in lines if l['interaction_id'] == rows[0]['interaction_id'])
    taken = {h['chunk_id'] for l in lines for h in l['results']} | {c for r in rows for c in r['relevant_chunk_ids']}
    unseen = next(c for c in first_chunk.values() if c not in taken)
    rows[0]['relevant_chunk_ids'].append(unseen)  # ... and points at a source the search did not show
    (tmp_path/'fb.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    assert run_json('feedback', 'import', tmp_path/'fb.jsonl', '--workspace', ws)['counts'] == {'stored': len(rows)}
    emb = tmp_path/'emb'
    d = run_json('improve', 'embedder', '--out', emb, '--epochs', '1', '--workspace', ws)
    # the training data: exactly the logged questions, their marked chunks, their natural negatives
    question = {l['interaction_id']: l['query'] for l in lines}
    shown = {l['query']: [h['chunk_id'] for h in l['results']] for l in lines}
    run_q = {json.loads(l)['_id']: json.loads(l)['text'] for l in open(emb/'run'/'data'/'queries.jsonl')}
    assert set(run_q.values()) == {question[r['interaction_id']] for r in rows}  # no held-out query leaks in
    train = [l.rstrip('\n').split('\t') for l in list(open(emb/'run'/'data'/'qrels'/'train.tsv'))[1:]]
    assert {(run_q[q], c) for q, c, _ in train} == {(question[r['interaction_id']], c) for r in rows for c in r['relevant_chunk_ids']}
    assert (run_q[next(q for q, c, _ in train if c == unseen)] == line0['query']), 'a source the search did not show, marked relevant, is a positive too'
    triples = [json.loads(l) for l in open(emb/'run'/'data'/'triples.jsonl')]
    marked = {question[r['interaction_id']]: set(r['irrelevant_chunk_ids']) for r in rows}
    assert sum(bool(t['logged_negative_ids']) for t in triples) >= len(rows) // 2
    for t in triples:
        assert set(t['logged_negative_ids']) <= set(shown[t['query']]) | marked[t['query']]
        assert t['positive_id'] not in t['logged_negative_ids']
    cfg = json.loads((emb/'run'/'config.json').read_text())
    assert cfg['given_negatives'] == d['n_logged_negatives'] > 0 and cfg['hard_negatives'] == 1
    # the folder is the model: re-embed a copy of the workspace with it, search with --embedder DIR
    ws2 = tmp_path/'ws_after'
    shutil.copytree(ws, ws2)
    run_cli('ingest', tmp_path/'scifact'/'corpus.jsonl', '--workspace', ws2, '--embedder', emb, '--json', '--no-progress')
    hit = run_json('search', queries[test_q[0]], '--embedder', emb, '--workspace', ws2)
    assert hit['results'] and hit['interaction_id']
    before = held_out_ndcg(ws, {q: queries[q] for q in test_q}, {q: qrels[q] for q in test_q})
    after = held_out_ndcg(ws2, {q: queries[q] for q in test_q}, {q: qrels[q] for q in test_q}, str(emb))
    assert after['dense'] >= before['dense'] - 0.03, (before, after, d)
