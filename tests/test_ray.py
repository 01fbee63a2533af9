"""Scale-out on Ray (issue 15): `--engine ray` gives what `--engine local` gives, survives a killed worker, and
accounts for broken inputs the same way. A local Ray instance (2 CPUs, 2 actors) on a SciFact subset."""
import json, os, signal, sqlite3, threading, time
from pathlib import Path
import numpy as np
import pytest
from conftest import run_json, cli_env, SCIFACT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
N_DOCS = 150
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

@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    "The first SciFact abstracts as Markdown files, plus an exact and a near copy of one of them."
    if not (SCIFACT/'corpus.jsonl').exists(): pytest.skip(f'{SCIFACT} is not present (SciFact evaluation data)')
    d = tmp_path_factory.mktemp('scifact')/'files'; d.mkdir()
    with open(SCIFACT/'corpus.jsonl') as f:
        rows = [json.loads(next(f)) for _ in range(N_DOCS)]
    for r in rows: (d/f"{r['_id']}.md").write_text(f"# {r['title']}\n\n{r['text']}\n")
    (d/'copy.md').write_text((d/f"{rows[0]['_id']}.md").read_text())
    (d/'near.md').write_text((d/f"{rows[1]['_id']}.md").read_text().replace(' the ', ' this ', 1))
    return d

@pytest.fixture(scope='module')
def both(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp('engines')
    out = {}
    for engine in ('local', 'ray'):
        t = time.perf_counter()
        man = run_json('ingest', corpus, '--workspace', root/engine, '--engine', engine, env=env(), timeout=900)
        out[engine] = dict(man=man, ws=root/engine, s=time.perf_counter() - t)
    print({e: round(v['s'], 1) for e, v in out.items()})
    return out

def test_ray_engine_gives_the_local_result(both, corpus):
    a, b = both['local'], both['ray']
    assert norm(a['man']) == norm(b['man'])
    assert a['man']['counts'] == {'ingested': N_DOCS, 'duplicate': 2}, a['man']['counts']  # the copies were found
    ids_a, va, docs_a = stored(a['ws']); ids_b, vb, docs_b = stored(b['ws'])
    assert ids_a == ids_b and docs_a == docs_b and len(ids_a) > N_DOCS
    assert float(np.abs(va - vb).max()) <= 1e-5
    # search results: same chunks in the same order, in every mode
    from genai_accel.data.index import KnowledgeBase, ALL_ACCESS
    s = settings()
    kbs = [KnowledgeBase(x['ws'], s) for x in (a, b)]
    with open(SCIFACT/'queries.jsonl') as f: queries = [json.loads(next(f))['text'] for _ in range(10)]
    for mode in ('dense', 'bm25', 'hybrid'):
        for q in queries:
            ha, hb = (kb.search(q, k=10, mode=mode, groups=ALL_ACCESS) for kb in kbs)
            assert [h.chunk_id for h in ha] == [h.chunk_id for h in hb], (mode, q)
            assert np.allclose([h.score for h in ha], [h.score for h in hb], atol=1e-4)
    # a second ray run finds nothing to do (no Ray start needed) and changes nothing
    again = run_json('ingest', corpus, '--workspace', b['ws'], '--engine', 'ray', env=env())
    assert again['counts'] == {'unchanged': N_DOCS, 'duplicate': 2} or set(again['counts']) <= {'unchanged', 'duplicate'}
    assert stored(b['ws'])[0] == ids_b

def _actor_pids()->list[int]:
    "Processes of the embedding actors (Ray names them after the class)."
    import psutil
    pids = []
    for p in psutil.process_iter(['pid', 'cmdline']):
        cmd = ' '.join(p.info['cmdline'] or [])
        if 'PrepareEmbed' in cmd and cmd.startswith('ray::'): pids.append(p.info['pid'])
    return pids

def test_killed_actor_does_not_change_the_index(both, corpus, tmp_path):
    import ray
    from genai_accel.data.distributed import ingest_ray
    ws, res = tmp_path/'ws', {}
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
    assert killed is not None, "no actor was found (or ingestion ended) before the kill"
    assert killed[0] not in _actor_pids()
    assert 'error' not in res, res.get('error')
    man = json.loads(json.dumps(res['man'].to_dict(), default=str))
    assert killed[1] < sum(f['n_chunks'] for f in man['files']), "the kill came after the last chunk was written"
    assert norm(man) == norm(both['local']['man'])
    ids_a, va, docs_a = stored(both['local']['ws']); ids_k, vk, docs_k = stored(ws)
    assert ids_a == ids_k and docs_a == docs_k  # nothing lost, nothing duplicated
    assert float(np.abs(va - vk).max()) <= 1e-5
    from genai_accel.data.index import KnowledgeBase, ALL_ACCESS
    q = 'vitamin D deficiency and bone density'
    ha, hk = (KnowledgeBase(w, settings()).search(q, k=10, mode='hybrid', groups=ALL_ACCESS) for w in (both['local']['ws'], ws))
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
