"""Several processes on one workspace: writers (ingest, index build) run one at a time under the workspace's lock,
readers never see an error while the index is rebuilt, and no writer loses another's documents."""
import json, os, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT, cli_env, run_cli

ROUNDS = 10
TOPICS = {'a': ['gardening tomatoes in greenhouses', 'baking sourdough bread at home', 'repairing a bicycle chain'],
          'b': ['planning a hiking trip in the alps', 'learning the violin as an adult', 'filing freelance tax returns']}

# An ingest worker: loads the embedder once, then ingests its folder each time the test says go.
INGESTER = """
import json, sys, time
from pathlib import Path
from genai_accel.core.config import Settings
from genai_accel.core.models import Embedder
from genai_accel.data.ingest import ingest
folder, ws, sync, name, rounds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
s = Settings(); emb = Embedder(s)
(sync/f'ready-{name}').touch()
for r in range(1, rounds + 1):
    while not (sync/f'go-{r}').exists(): time.sleep(0.002)
    man = ingest([folder], ws, s, embedder=emb)
    (sync/f'tmp-{name}').write_text(json.dumps(man.to_dict())); (sync/f'tmp-{name}').rename(sync/f'done-{name}-{r}.json')  # appears whole
"""

# A reader: searches in every mode, in a loop, until told to stop; every other pass opens the workspace afresh.
SEARCHER = """
import json, sys, traceback
from pathlib import Path
from genai_accel.core.config import Settings
from genai_accel.core.models import Embedder
from genai_accel.data.index import KnowledgeBase
ws, sync = sys.argv[1], Path(sys.argv[2])
s = Settings(); emb = Embedder(s)
kb, n, errors, i = KnowledgeBase(ws, s, embedder=emb), 0, 0, 0
while not (sync/'stop').exists():
    i += 1
    if i % 2 == 0: kb.con.close(); kb = KnowledgeBase(ws, s, embedder=emb)
    for mode in ('dense', 'bm25', 'hybrid'):
        try:
            hits = kb.search('how to bake bread or plan a hike', k=3, mode=mode, groups=['public'])
            assert hits, 'no results'
            n += 1
        except Exception:
            errors += 1; traceback.print_exc()
    if n >= 3: (sync/'ready-searcher').touch()
print(json.dumps(dict(searches=n, errors=errors)))
"""

def write_round(folder:Path, name:str, r:int):
    """Round r's content: every file changes, one extra file replaces the previous round's, and both folders hold
    a copy of the same `shared` text (so exactly one copy may be indexed: duplicate detection's state must not be
    lost). File names differ between the folders: a document's id is its path relative to the ingested folder."""
    folder.mkdir(exist_ok=True)
    (folder/f'{name}-shared-{r - 1}.txt').unlink(missing_ok=True)
    (folder/f'{name}-shared-{r}.txt').write_text(f'The shared office calendar for round {r} lists the fire drill and the summer party.\n')
    for i, topic in enumerate(TOPICS[name]):
        (folder/f'{name}{i}.txt').write_text(f'Notes about {topic}, revision {r}. '
                                            f'These notes on {topic} were last revised in round {r} of {ROUNDS}.\n')
    (folder/f'{name}-extra-{r - 1}.txt').unlink(missing_ok=True)
    (folder/f'{name}-extra-{r}.txt').write_text(f'An extra page of folder {name} written in round {r}: {TOPICS[name][r % 3]}.\n')

def index_chunk_ids(ws:Path)->list[str]:
    "The chunk ids of the workspace's current index generation (one per index row)."
    from genai_accel.data.store import open_store, chunk_rows
    gen = ws/'index'/(ws/'index'/'CURRENT').read_text().strip()
    rows = json.loads((gen/'rows.json').read_text())['rows']
    con = open_store(ws, readonly=True)
    try: by_row = chunk_rows(con, rows)
    finally: con.close()
    assert len(by_row) == len(rows), "every index row must be a chunk in the store"
    return [by_row[r]['chunk_id'] for r in rows]

def wait_for(path:Path, procs, timeout:float=300):
    t = time.time() + timeout
    while not path.exists():
        for p in procs:
            if p.poll() is not None: raise AssertionError(f"a worker exited early ({p.returncode}): {p.stderr.read()[-3000:]}")
        if time.time() > t: raise AssertionError(f"timed out waiting for {path.name}")
        time.sleep(0.01)

@pytest.mark.slow
def test_two_ingests_at_once_keep_both_folders_while_searches_run(tmp_path):
    from genai_accel.core.config import Settings
    from genai_accel.core.models import Embedder
    from genai_accel.data.ingest import ingest
    s, env = Settings(), cli_env(OMP_NUM_THREADS=1, GENAI_ACCEL_MODELS_THREADS=1)
    emb = Embedder(s)
    folders = {n: tmp_path/n for n in TOPICS}
    ws, sync = tmp_path/'ws', tmp_path/'sync'; sync.mkdir()
    for n, f in folders.items(): write_round(f, n, 0); ingest([f], ws, s, embedder=emb)
    start = lambda code, *args: subprocess.Popen([sys.executable, '-c', code, *map(str, args)], env=env, cwd=tmp_path,
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    searcher = start(SEARCHER, ws, sync)
    workers = [start(INGESTER, folders[n], ws, sync, n, ROUNDS) for n in TOPICS]
    try:
        for n in TOPICS: wait_for(sync/f'ready-{n}', workers)
        wait_for(sync/'ready-searcher', [searcher])
        for r in range(1, ROUNDS + 1):
            for n, f in folders.items(): write_round(f, n, r)
            (sync/f'go-{r}').touch()  # both workers start ingesting at this moment
            for n in TOPICS: wait_for(sync/f'done-{n}-{r}.json', workers)
            shared = {}
            for n in TOPICS:
                man = json.loads((sync/f'done-{n}-{r}.json').read_text())
                st = {Path(f['path']).name: f['status'] for f in man['files']}
                assert man['index_rebuilt'] and st[f'{n}-extra-{r - 1}.txt'] == 'deleted', (r, n, st)
                shared[n] = st[f'{n}-shared-{r}.txt']
            assert sorted(shared.values()) == ['duplicate', 'ingested'], f"round {r}: the shared file: {shared}"
            # the single-process reference: one folder after the other, in the order the lock gave them
            ref = tmp_path/f'ref-{r}'
            for n in sorted(TOPICS, key=lambda n: shared[n] != 'ingested'): ingest([folders[n]], ref, s, embedder=emb)
            expected = index_chunk_ids(ref)
            got = index_chunk_ids(ws)
            assert len(got) == len(set(got)), f"round {r}: a chunk is indexed twice"
            assert sorted(got) == sorted(expected), f"round {r}: the index differs from one ingest after the other"
            assert len(got) == 2 * 4 + 1  # three topic files and an extra page per folder, one shared file
    finally:
        (sync/'stop').touch()
        out, err = searcher.communicate(timeout=120)
        for p in workers:
            if p.poll() is None: p.kill()
            p.wait()
    res = json.loads(out.strip().splitlines()[-1])
    assert res['errors'] == 0, err[-5000:]
    assert res['searches'] >= ROUNDS, res  # it really searched while the index was being rebuilt

def test_second_writer_fails_fast_when_told_to(tmp_path):
    "With workspace.lock_timeout_s = 0, an ingest into a workspace another process is writing fails at once, exit 2."
    from genai_accel.data.store import writer_lock
    (tmp_path/'docs').mkdir(); (tmp_path/'docs'/'a.txt').write_text('Some text to ingest.')
    with writer_lock(tmp_path/'ws', timeout_s=0):  # this test process is the other writer
        t = time.time()
        p = run_cli('ingest', tmp_path/'docs', '--workspace', tmp_path/'ws', check=False,
                    env=cli_env(GENAI_ACCEL_WORKSPACE_LOCK_TIMEOUT_S=0))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert 'is being written by another process' in p.stderr and 'workspace.lock_timeout_s' in p.stderr, p.stderr
    assert not (tmp_path/'ws'/'state.sqlite').exists(), "the refused ingest must not have written anything"
