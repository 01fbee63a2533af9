"""A workspace written by the previous release (tests/fixtures/workspace_v1, see its README.txt) opens, migrates
and searches with the current code; a store written by a newer release is refused with a message that names the
versions and the fix. Run through the installed `genai-accel`, as a user meets them."""
import shutil, sqlite3
from conftest import ROOT, run_cli, run_json

FIXTURE = ROOT/'tests'/'fixtures'/'workspace_v1'

def copy_fixture(tmp_path):
    ws = tmp_path/'ws'
    shutil.copytree(FIXTURE, ws, ignore=shutil.ignore_patterns('README.txt'))
    return ws

def test_previous_release_workspace_migrates_and_searches(tmp_path):
    from genai_accel.data.store import open_store, stored_version, dump_state, SCHEMA_VERSION
    from genai_accel.data.index import KnowledgeBase
    ws = copy_fixture(tmp_path)
    con = open_store(ws, readonly=True)  # read-only: readable as it is, left untouched
    assert stored_version(con) == 1 and SCHEMA_VERSION > 1
    before = dump_state(con); con.close()
    assert len(before['chunks']) == 4
    res = run_json('search', 'how long is parental leave', '--k', 2, '--groups', 'public', '--workspace', ws)['results']
    assert res[0]['doc_id'] == 'parental-leave.txt', res
    con = open_store(ws, readonly=True)
    assert stored_version(con) == SCHEMA_VERSION, "opening it read-write migrates it in place"
    assert dump_state(con) == before, "the migration keeps every document, chunk and embedding"
    con.close()
    kb = KnowledgeBase(ws)
    assert 'salary-bands.txt' not in [h.doc_id for h in kb.search('salary level three', k=4, mode='bm25', groups=['public'])]
    assert kb.search('salary level three', k=1, mode='bm25', groups=['hr'])[0].doc_id == 'salary-bands.txt'

def test_previous_release_workspace_takes_new_documents(tmp_path):
    from genai_accel.data.store import open_store, dump_state
    from genai_accel.data.index import KnowledgeBase
    ws = copy_fixture(tmp_path)
    (tmp_path/'new').mkdir()
    (tmp_path/'new'/'bikes.txt').write_text('Bicycles\n\nStaff may park bicycles in the basement garage, which opens at seven.\n')
    man = run_json('ingest', tmp_path/'new', '--workspace', ws)
    assert [f['status'] for f in man['files']] == ['ingested']
    con = open_store(ws, readonly=True); state = dump_state(con); con.close()
    assert len(state['chunks']) == 5
    assert KnowledgeBase(ws).search('where can I park my bicycle', k=1, mode='bm25', groups=['public'])[0].doc_id == 'bikes.txt'

def test_store_from_a_newer_release_is_refused(tmp_path):
    from genai_accel.data.store import SCHEMA_VERSION
    ws = copy_fixture(tmp_path)
    future = SCHEMA_VERSION + 1
    # what a newer release would leave behind (written directly: no code of this release writes a future version)
    con = sqlite3.connect(ws/'state.sqlite'); con.execute(f'PRAGMA user_version = {future}'); con.commit(); con.close()
    (tmp_path/'docs').mkdir(); (tmp_path/'docs'/'a.txt').write_text('Any text at all.')
    for args in (['search', 'parental leave', '--groups', 'public'], ['ingest', tmp_path/'docs']):
        p = run_cli(*args, '--workspace', ws, check=False)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert f'schema version {future} was written by a newer genai_accel' in p.stderr, p.stderr
        assert f'reads version {SCHEMA_VERSION}' in p.stderr and 'upgrade genai_accel' in p.stderr, p.stderr
