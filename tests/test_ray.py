"""Scale-out on Ray (issue 15): `--engine ray` gives what `--engine local` gives on the whole SciFact corpus (through
`eval retrieval`, sharing the local run with the retrieval floors) and on SciFact files with planted copies (500 abstracts
in CI, all on request), survives a killed worker, accounts for broken inputs the same way, and answers an evaluation set
on actors with the local engine's metrics. A local Ray instance (2 CPUs, 2 actors)."""
import json, os, signal, sqlite3, threading, time
from pathlib import Path
import numpy as np
import pytest
from conftest import run_json, run_cli, cli_env, SCIFACT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
# the equality check on files (planted exact and near copies, the manifest, a re-run): the first 150 SciFact abstracts in
# CI; GENAI_ACCEL_TEST_RAY_DOCS=0 runs the whole corpus as files, =N the first N. The whole corpus
# itself is compared in CI by test_ray_engine_gives_the_local_result_on_all_of_scifact (BEIR file, no deduplication)
N_KILL = 150  # the killed-actor test's subset, with its own local reference; its killed run is also the file test's Ray run
N_FULL = int(os.environ.get('GENAI_ACCEL_TEST_RAY_DOCS', str(N_KILL))) or None  # = N_KILL: the same files, one local ingest for both
# fp32: bf16 (what `auto` picks on AMX CPUs) depends on the batch a text is padded in, ~1e-3 (see 19_distributed)
ENV = dict(GENAI_ACCEL_MODELS_EMBED_PRECISION='fp32', GENAI_ACCEL_RAY_NUM_CPUS='2', GENAI_ACCEL_RAY_ACTORS='2',
           GENAI_ACCEL_RAY_BATCH_SIZE='16', GENAI_ACCEL_MODELS_THREADS='1', OMP_NUM_THREADS='1')

def env():
    e = cli_env(**ENV); e.pop('RAY_ADDRESS', None)
    return e

def settings():
    from genai_accel.core.config import Settings
    return Settings().with_overrides(models__embed_precision='fp32', models__threads=1, ray__batch_size=16)

FILE_KEYS = ('path', 'status', 'reason', 'n_docs', 'n_chunks', 'n_embedded', 'rows_failed')

def norm(man:dict)->dict:
    "A manifest without what differs by run (timings, the workspace folder), files as the CLI's --json shows them."
    d = {k: v for k, v in man.items() if k not in ('timings', 'workspace')}
    d['files'] = [{k: f.get(k, 0) for k in FILE_KEYS} for f in man['files']]
    return d

def stored(ws):
    "(chunk ids, their vectors), by chunk id, and the documents' statuses."
    con = sqlite3.connect(f"file:{Path(ws)/'state.sqlite'}?mode=ro", uri=True)
    rows = con.execute("SELECT chunk_id, embedding FROM chunks ORDER BY chunk_id").fetchall()
    docs = con.execute("SELECT doc_key, status, duplicate_of, n_chunks FROM documents ORDER BY doc_key").fetchall()
    con.close()
    return [r[0] for r in rows], np.stack([np.frombuffer(r[1], np.float32) for r in rows]), docs

def scifact_files(dest:Path, n:int|None)->tuple[Path, list]:
    "The first `n` SciFact abstracts (all: None) as Markdown files, plus an exact copy of the first and a near copy of the second."
    if not (SCIFACT/'corpus.jsonl').exists(): pytest.skip(f'{SCIFACT} is not present (SciFact evaluation data)')
    dest.mkdir(parents=True)
    with open(SCIFACT/'corpus.jsonl') as f:
        rows = [json.loads(line) for _, line in zip(range(n) if n else iter(int, 1), f)]
    for r in rows: (dest/f"{r['_id']}.md").write_text(f"# {r['title']}\n\n{r['text']}\n")
    (dest/'copy.md').write_text((dest/f"{rows[0]['_id']}.md").read_text())
    (dest/'near.md').write_text((dest/f"{rows[1]['_id']}.md").read_text().replace(' the ', ' this ', 1))
    return dest, rows

@pytest.fixture(scope='module')
def corpus(subset, tmp_path_factory):
    "The first N_FULL SciFact abstracts (GENAI_ACCEL_TEST_RAY_DOCS; all: 0) with the planted copies: the killed-actor subset's files by default."
    if N_FULL == N_KILL: return subset[0], subset[2]
    return scifact_files(tmp_path_factory.mktemp('scifact')/'files', N_FULL)

@pytest.fixture(scope='module')
def both(corpus, subset, tmp_path_factory, request):
    "`genai-accel ingest` of the corpus with --engine local and --engine ray (each timed); for the subset's files, its local ingest and killed-actor run."
    root, out = tmp_path_factory.mktemp('engines'), {}
    if corpus[0] == subset[0]:
        return dict(local=dict(subset[1], s=None), ray=dict(request.getfixturevalue('killed_run'), s=None))
    for engine in ('local', 'ray'):
        t = time.perf_counter()
        man = run_json('ingest', corpus[0], '--workspace', root/engine, '--engine', engine, env=env(), timeout=3000)
        out[engine] = dict(man=man, ws=root/engine, s=time.perf_counter() - t)
    print('ingest seconds:', {e: v['s'] and round(v['s'], 1) for e, v in out.items()}, 'documents:', len(corpus[1]) + 2)
    return out

def same_search_results(ws_a, ws_b):
    "The same chunks in the same order, scores within 1e-4, in every mode, for 20 SciFact queries, in two workspaces."
    from genai_accel.data.index import KnowledgeBase, ALL_ACCESS
    from genai_accel.core.models import Embedder
    s = settings()
    emb = Embedder(s)  # one model for both workspaces
    kbs = [KnowledgeBase(w, s, embedder=emb) for w in (ws_a, ws_b)]
    with open(SCIFACT/'queries.jsonl') as f: queries = [json.loads(line)['text'] for _, line in zip(range(20), f)]
    for mode in ('dense', 'bm25', 'hybrid'):
        for q in queries:
            ha, hb = (kb.search(q, k=10, mode=mode, groups=ALL_ACCESS, log=False) for kb in kbs)
            assert len(ha) == 10 and [h.chunk_id for h in ha] == [h.chunk_id for h in hb], (mode, q)
            assert np.allclose([h.score for h in ha], [h.score for h in hb], atol=1e-4)

def planted_copies_found(man:dict, rows:list):
    "The exact copy of the first abstract and the near copy of the second are the duplicates they are."
    from genai_accel.data.store import doc_key
    dups = {d['doc_id']: d for d in man['duplicates']}
    assert dups['copy.md']['kind'] == 'exact' and dups['near.md']['kind'] == 'near', man['duplicates']
    coll = man['collection']
    assert dups['copy.md']['duplicate_of'] == doc_key(coll, f"{rows[0]['_id']}.md"), dups['copy.md']
    assert dups['near.md']['duplicate_of'] == doc_key(coll, f"{rows[1]['_id']}.md"), dups['near.md']

def test_ray_engine_gives_the_local_result(both, corpus):
    a, b = both['local'], both['ray']
    files, rows = corpus
    n_files = len(rows) + 2
    assert norm(a['man']) == norm(b['man'])
    c = a['man']['counts']
    # every file accounted for: SciFact has no duplicate abstracts of its own, so the duplicates are the planted copies
    assert c == {'ingested': len(rows), 'duplicate': 2}, c
    planted_copies_found(a['man'], rows)
    ids_a, va, docs_a = stored(a['ws']); ids_b, vb, docs_b = stored(b['ws'])
    assert ids_a == ids_b and docs_a == docs_b and len(ids_a) >= c['ingested']
    assert len(docs_a) == n_files and sum(d[1] == 'duplicate' for d in docs_a) == c['duplicate']
    assert float(np.abs(va - vb).max()) <= 1e-5
    same_search_results(a['ws'], b['ws'])
    # a second ray run finds nothing to do (no Ray start needed) and changes nothing: every file is unchanged
    again = run_json('ingest', files, '--workspace', b['ws'], '--engine', 'ray', env=env(), timeout=900)
    assert again['counts'] == {'unchanged': n_files}, again['counts']
    assert again['index_rebuilt'] is False
    assert stored(b['ws'])[0] == ids_b

def _actor_pids()->list[int]:
    "Processes of the embedding actors (Ray names them after the class)."
    import psutil
    pids = []
    for p in psutil.process_iter(['pid', 'cmdline']):
        cmd = ' '.join(p.info['cmdline'] or [])
        if 'PrepareEmbed' in cmd and cmd.startswith('ray::'): pids.append(p.info['pid'])
    return pids

@pytest.fixture(scope='module')
def subset(tmp_path_factory):
    "The first N_KILL abstracts with the planted copies, and their local ingest (the reference for the killed-actor run)."
    root = tmp_path_factory.mktemp('subset')
    files, rows = scifact_files(root/'files', N_KILL)
    man = run_json('ingest', files, '--workspace', root/'local', '--engine', 'local', env=env(), timeout=900)
    planted_copies_found(man, rows)
    return files, dict(man=man, ws=root/'local'), rows

@pytest.fixture(scope='module')
def killed_run(subset, tmp_path_factory)->dict:
    "`ingest_ray` of the subset's files with one embedding actor killed by pid mid-run: man, ws, killed, error."
    import ray
    from genai_accel.data.distributed import ingest_ray
    corpus = subset[0]
    ws, res = tmp_path_factory.mktemp('killed')/'ws', {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level='WARNING')
    try:
        def run():
            try: res['man'] = ingest_ray([corpus], ws, settings(), actors=2)
            except BaseException as e: res['error'] = e
        th = threading.Thread(target=run); th.start()
        killed, t0 = None, time.time()
        while th.is_alive() and time.time() - t0 < 300 and killed is None:
            pids = _actor_pids()
            db = ws/'state.sqlite'
            if pids and db.exists():
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try: n = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
                except sqlite3.OperationalError: n = 0
                con.close()
                if n > 0:  # ingestion is under way: chunks are being written
                    os.kill(pids[0], signal.SIGKILL); killed = (pids[0], n)
            time.sleep(0.2)
        th.join(600)
    finally: ray.shutdown()
    man = json.loads(json.dumps(res['man'].to_dict(), default=str)) if 'man' in res else None
    return dict(man=man, ws=ws, killed=killed, error=res.get('error'))

def test_killed_actor_does_not_change_the_index(subset, killed_run):
    _, local, _ = subset
    killed, ws, man = killed_run['killed'], killed_run['ws'], killed_run['man']
    assert killed is not None, "no actor was found (or ingestion ended) before the kill"
    assert killed[0] not in _actor_pids()
    assert killed_run['error'] is None, killed_run['error']
    assert killed[1] < sum(f['n_chunks'] for f in man['files']), "the kill came after the last chunk was written"
    assert norm(man) == norm(local['man'])
    ids_a, va, docs_a = stored(local['ws']); ids_k, vk, docs_k = stored(ws)
    assert ids_a == ids_k and docs_a == docs_k  # nothing lost, nothing duplicated
    assert float(np.abs(va - vk).max()) <= 1e-5
    from genai_accel.data.index import KnowledgeBase, ALL_ACCESS
    q = 'vitamin D deficiency and bone density'
    ha, hk = (KnowledgeBase(w, settings()).search(q, k=10, mode='hybrid', groups=ALL_ACCESS) for w in (local['ws'], ws))
    assert [h.chunk_id for h in ha] == [h.chunk_id for h in hk]

def test_broken_inputs_same_manifest_on_both_engines(tmp_path):
    from test_cli import hostile_folder
    d = hostile_folder(tmp_path)
    mans = {e: run_json('ingest', d, '--workspace', tmp_path/e, '--engine', e, env=env(), timeout=900) for e in ('local', 'ray')}
    assert norm(mans['local']) == norm(mans['ray'])
    st = {Path(f['path']).name: f['status'] for f in mans['ray']['files']}
    assert st['good.md'] == 'ingested' and st['truncated.pdf'] in ('failed', 'skipped') and st['empty.txt'] == 'skipped'

def test_unknown_engine_is_a_usage_error(tmp_path):
    from conftest import run_cli
    p = run_cli('ingest', tmp_path, '--engine', 'spark', '--workspace', tmp_path/'ws', check=False)
    assert p.returncode == 2 and '--engine local or --engine ray' in p.stderr
    assert not (tmp_path/'ws').exists()

# --- batch evaluation on actors (`eval run --engine ray`) ---

EVAL_TOPICS = ['break', 'pass', 'assert', 'while']
EVAL_ROWS = [dict(id='q-break', question='What does the break statement do in a loop?', relevant_doc_ids=['break.md'],
                  reference_answer='break terminates the nearest enclosing for or while loop'),
             dict(id='q-pass', question='What does the pass statement do?', relevant_doc_ids=['pass.md'],
                  reference_answer='pass is a null operation: nothing happens when it executes'),
             dict(id='q-assert', question='How do assert statements behave when optimization is requested?',
                  relevant_doc_ids=['assert.md']),
             # a question too long for the prompt budget: `ask` raises, so the row fails, on both engines
             dict(id='q-long', question='What does the while statement do? The while statement is used for repeated '
                  'execution as long as an expression is true. ' * 80, relevant_doc_ids=['while.md']),
             dict(id='q-off', question='Who won the 2018 FIFA World Cup?', tags=['unanswerable'])]
# what legitimately differs between two runs of the same evaluation: clocks, and the folders written
RUN_KEYS = ('wall_s', 'started', 'finished', 'cache', 'latency', 'throughput', 'cost')

def _same_run(d:dict)->dict:
    "metrics.json without timings (wall clock, latency, throughput, cost per 1k rows derive from them) and paths."
    meta = {k: v for k, v in d['meta'].items() if k not in RUN_KEYS}
    return dict(meta=meta, candidates=[{k: v for k, v in c.items() if k not in RUN_KEYS} for c in d['candidates']])

def _rows(path:Path)->list:
    keep = ('candidate', 'row_id', 'repeat', 'status', 'error', 'stage', 'detail', 'answer', 'metrics', 'ranked_docs')
    return [{k: r[k] for k in keep} for r in map(json.loads, path.read_text().splitlines())]

def test_eval_run_on_ray_actors_gives_the_local_metrics(tmp_path):
    "Greedy answers generated on 2 Ray actors: the same metrics.json and rows (in row order) as the local engine."
    import shutil
    from genai_accel.data.ingest import write_sample_corpus
    everything = write_sample_corpus(tmp_path/'all'); (tmp_path/'corpus').mkdir()
    for t in EVAL_TOPICS: shutil.copy(everything/f'{t}.md', tmp_path/'corpus'/f'{t}.md')
    ws = tmp_path/'ws'
    run_json('ingest', tmp_path/'corpus', '--workspace', ws, env=env())
    rows = tmp_path/'rows.jsonl'
    rows.write_text(''.join(json.dumps(r) + '\n' for r in EVAL_ROWS))
    runs = {}
    for engine in ('local', 'ray'):
        t = time.perf_counter()
        p = run_cli('eval', 'run', rows, '--repeats', '1', '--max-new-tokens', '16', '--concurrency', '1', '--workspace', ws,
                    '--out', tmp_path/engine, '--engine', engine, env=env(), check=False, timeout=900)
        assert p.returncode in (0, 1) and (tmp_path/engine/'metrics.json').exists(), (p.returncode, p.stdout[-2000:], p.stderr[-3000:])
        runs[engine] = (json.loads((tmp_path/engine/'metrics.json').read_text()), _rows(tmp_path/engine/'rows.jsonl'), p)
        print(engine, 'eval run seconds:', round(time.perf_counter() - t, 1))
    (ml, rl, pl), (mr, rr, pr) = runs['local'], runs['ray']
    assert [r['row_id'] for r in rr] == [r['id'] for r in EVAL_ROWS]  # collected in row order
    assert _same_run(mr) == _same_run(ml)
    assert rr == rl  # every answer, status, error, ranking and metric
    c = mr['candidates'][0]
    assert c['counts']['rows'] == len(EVAL_ROWS) and c['counts']['generated'] == len(EVAL_ROWS)
    assert c['counts']['failed'] == 1 and c['counts']['ok'] == len(EVAL_ROWS) - 1
    long = next(r for r in rr if r['row_id'] == 'q-long')
    assert long['status'] == 'failed' and 'RAGError' in long['error'] and 'budget' in long['error'], long
    assert all(r['status'] == 'ok' and r['answer'] for r in rr if r['row_id'] != 'q-long')
    assert '5/5' in pr.stderr and 'default' in pr.stderr, pr.stderr[-2000:]  # progress, as rows come back from actors
    # the ray run again: every row from the driver's answer cache (the failed one is answered anew), no drift
    p = run_cli('eval', 'run', rows, '--repeats', '1', '--max-new-tokens', '16', '--workspace', ws, '--out', tmp_path/'ray',
                '--engine', 'ray', '--json', env=env(), check=False, timeout=900)
    again = json.loads(p.stdout)['candidates'][0]
    assert again['counts']['cached'] == len(EVAL_ROWS) - 1 and again['counts']['generated'] == 1
    assert again['metrics'] == c['metrics']

def test_ray_engine_gives_the_local_result_on_all_of_scifact(scifact_evals, tmp_path):
    """The whole SciFact corpus (5,183 abstracts) through `eval retrieval --engine ray` against the local engine's run
    (conftest's scifact_evals, shared with the retrieval floors): the same documents and statuses, chunk ids, vectors
    within 1e-5, search results in every mode, and the same figures."""
    local = scifact_evals['res']['hybrid']
    ray = run_json('eval', 'retrieval', SCIFACT, '--split', 'train', '--mode', 'hybrid', '--workspace', tmp_path/'ws',
                   '--engine', 'ray', env=env(), timeout=3000)
    drop = ('index_s', 'search_ms_per_query', 'workspace')
    assert {k: v for k, v in ray.items() if k not in drop} == {k: v for k, v in local.items() if k not in drop}
    with open(SCIFACT/'corpus.jsonl') as f: n_docs = sum(1 for line in f if line.strip())
    assert local['n_documents'] == n_docs and local['n_chunks'] >= n_docs, local
    ids_a, va, docs_a = stored(local['workspace']); ids_b, vb, docs_b = stored(ray['workspace'])
    assert len(docs_a) == n_docs and ids_a == ids_b and docs_a == docs_b and len(ids_a) == local['n_chunks']
    assert float(np.abs(va - vb).max()) <= 1e-5
    same_search_results(local['workspace'], ray['workspace'])
