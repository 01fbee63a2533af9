"""Hostile inputs: `iter_files` + `load_file_report` never crash or hang, and every file gets documents or a reason.

Unreadable files: the tests run as root here, and root reads a chmod-000 file anyway. So "unreadable" is
covered three ways: a FIFO named like a text file (opening it would block forever: the walker must see it is
not a regular file without opening it), a chmod-000 file checked in-process (a reason when not root, documents
when root), and, when running as root, a chmod-000 file and folder walked by a child process that has dropped
root's CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, for which the permission really is denied. (Running the child as
`nobody` does not work here: this venv's Python lives under /root, which only root may enter.)
"""
import io, json, os, random, subprocess, sys, time, tracemalloc
from pathlib import Path

import pytest
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from genai_accel.core.config import Settings
from genai_accel.data.loaders import FileEntry, LoadError, iter_files, load_file_report

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[1]
BIG_MB = 50


def _pdf_bytes(text: str) -> bytes:
    buf = io.BytesIO()
    with PdfPages(buf) as pp:
        fig = plt.figure(figsize=(4, 2)); fig.text(0.05, 0.5, text); pp.savefig(fig); plt.close(fig)
    return buf.getvalue()


def build_hostile(root: Path) -> dict[str, str]:
    """Create the hostile folder; return {relative path: expected outcome} where the outcome is 'docs'
    or a substring of the reason (skip reason or LoadError)."""
    rnd = random.Random(0)
    (root/'sub').mkdir()
    (root/'ok.md').write_text('# Fine\n\nA normal document.')
    (root/'empty.txt').write_bytes(b'')
    (root/'blank.txt').write_text(' \n\t\n')
    (root/'junk.txt').write_bytes(rnd.randbytes(8192))
    pdf = _pdf_bytes('Solar panels convert light.')
    (root/'good.pdf').write_bytes(pdf)
    (root/'cut.pdf').write_bytes(pdf[:len(pdf)//2])
    (root/'latin1.txt').write_bytes('Les élèves préfèrent le café crème à la récréation.'.encode('latin-1'))
    (root/'bad_utf8.txt').write_bytes(b'valid start \xc3\x28 broken \xe2\x28\xa1 pairs \xf0\x28\x8c\xbc end\n' * 3)
    with open(root/'huge_line.txt', 'wb') as f:  # one 50 MB line of legitimate text
        f.write(b'word ' * (BIG_MB * 2**20 // 5))
    (root/'rows.csv').write_text('id,text\n1,first row\n2,\n3,third row\n')
    (root/'notext.csv').write_text('a,b\n1,2\n')
    (root/'model.bin').write_bytes(b'\x00\x01')
    os.mkfifo(root/'pipe.txt')
    (root/'locked.txt').write_text('secret but readable by root')
    os.chmod(root/'locked.txt', 0)
    (root/'folder.txt').mkdir()  # a folder named like a file
    (root/'folder.txt'/'inner.txt').write_text('inside a folder named folder.txt')
    (root/'sub'/'up').symlink_to('..', target_is_directory=True)  # loop: points to its parent
    (root/'sub'/'self').symlink_to('self')  # ELOOP
    (root/'dangling.txt').symlink_to(root/'missing.txt')
    (root/'link_to_ok.md').symlink_to(root/'ok.md')  # symlinks to files are followed
    root_user = os.geteuid() == 0
    return {'ok.md': 'docs', 'empty.txt': 'empty file', 'blank.txt': 'only whitespace',
            'junk.txt': 'binary content', 'good.pdf': 'docs', 'cut.pdf': 'truncated or corrupt PDF',
            'latin1.txt': 'docs', 'bad_utf8.txt': 'docs|invalid UTF-8', 'huge_line.txt': 'docs',
            'rows.csv': 'docs', 'notext.csv': 'set ingest.text_columns', 'model.bin': 'unsupported format .bin',
            'pipe.txt': 'not a regular file (a FIFO', 'locked.txt': 'docs' if root_user else 'permission denied',
            'folder.txt/inner.txt': 'docs', 'sub/up': 'symlink loop', 'sub/self': 'symlink loop',
            'dangling.txt': 'broken symlink', 'link_to_ok.md': 'docs'}


def ingest(root: Path, settings: Settings) -> dict[str, tuple[str, object]]:
    "{rel: ('docs', (documents, problems)) | ('reason', text)} for every entry the walker yields."
    out = {}
    ing = settings.ingest
    for e in iter_files([root], ing.include, ing.exclude, ing.max_file_mb):
        assert e.rel not in out, f"{e.rel} yielded twice"
        if e.skip_reason:
            out[e.rel] = ('reason', e.skip_reason); continue
        try: out[e.rel] = ('docs', load_file_report(e, settings))
        except LoadError as err: out[e.rel] = ('reason', str(err))
    return out


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp('hostile')
    expected = build_hostile(root)
    t0 = time.perf_counter()
    # the loader itself must handle a 50 MB one-line file; ingest skips files over ingest.max_file_mb (20 MB) by default
    out = ingest(root, Settings(env={}).with_overrides(ingest__max_file_mb=100))
    return root, expected, out, time.perf_counter() - t0


def test_every_file_has_documents_or_a_reason(hostile):
    root, expected, out, secs = hostile
    assert set(out) == set(expected), f"lost or unexpected: {set(expected) ^ set(out)}"
    for rel, want in expected.items():
        kind, got = out[rel]
        if kind == 'docs':
            docs, _ = got
            assert docs and 'docs' in want.split('|'), f"{rel}: expected {want!r}, got {len(docs)} documents"
            assert all(d.text.strip() and d.content_hash for d in docs)
        else:
            assert got and any(w in got for w in want.split('|') if w != 'docs'), f"{rel}: expected {want!r}, got reason {got!r}"
    assert secs < 60, f"hostile folder took {secs:.1f} s"


def test_specific_outcomes(hostile):
    root, _, out, _ = hostile
    (latin,), _ = out['latin1.txt'][1]
    assert latin.text == 'Les élèves préfèrent le café crème à la récréation.'
    (big,), _ = out['huge_line.txt'][1]
    assert len(big.text) == BIG_MB * 2**20 // 5 * 5 and big.metadata['size_bytes'] == len(big.text)
    docs, problems = out['rows.csv'][1]
    assert [d.doc_id for d in docs] == ['rows.csv#1', 'rows.csv#3'] and len(problems) == 1 and 'row 2' in problems[0]
    (link,), _ = out['link_to_ok.md'][1]
    assert link.doc_id == 'link_to_ok.md' and link.text == 'A normal document.'.join(['# Fine\n\n', ''])
    assert out['good.pdf'][1][0][0].text == 'Solar panels convert light.'


def test_huge_line_memory(tmp_path):
    "A 50 MB one-line file loads with a peak of a few times its size."
    p = tmp_path/'one_line.txt'
    with open(p, 'wb') as f: f.write(b'x' * (BIG_MB * 2**20))
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        docs, _ = load_file_report(p)
        secs = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally: tracemalloc.stop()
    assert len(docs[0].text) == BIG_MB * 2**20
    assert peak < 4 * BIG_MB * 2**20, f"peak {peak/2**20:.0f} MB for a {BIG_MB} MB file"
    print(f"{BIG_MB} MB one-line file: {secs:.2f} s, peak {peak/2**20:.0f} MB")


def test_walker_limits(tmp_path):
    (tmp_path/'big.txt').write_bytes(b'a' * 3 * 2**20)
    (tmp_path/'.git').mkdir(); (tmp_path/'.git'/'HEAD').write_text('ref')
    s = Settings(env={})
    got = {e.rel: e.skip_reason for e in iter_files([tmp_path], s.ingest.include, s.ingest.exclude, max_file_mb=1)}
    assert got['big.txt'].startswith('too large') and got['.git/'].startswith('excluded by pattern .git/*')
    with pytest.raises(LoadError, match='not a regular file'): load_file_report(tmp_path)
    with pytest.raises(LoadError, match='too large'):
        load_file_report(next(e for e in iter_files([tmp_path/'big.txt'], max_file_mb=1)))


CHILD = r"""
import json, sys
from genai_accel.core.config import Settings
from genai_accel.data.loaders import iter_files, load_file_report, LoadError
out = {}
for e in iter_files([sys.argv[1]], ['*'], [], 100):
    if e.skip_reason: out[e.rel] = e.skip_reason; continue
    try: out[e.rel] = len(load_file_report(e, Settings(env={}))[0])
    except LoadError as err: out[e.rel] = str(err)
print(json.dumps(out))
"""


def _drop_root_file_powers():
    "In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so root obeys file permissions."
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP) failed')


@pytest.mark.skipif(os.geteuid() != 0 or not sys.platform.startswith('linux'), reason='needs root on Linux')
def test_permission_denied_for_real(tmp_path):
    """Root without its power to bypass file permissions (the user `nobody` cannot run this venv's Python,
    which lives under /root): a chmod-000 file and folder really are unreadable; both get a reason."""
    root = tmp_path
    (root/'open.txt').write_text('anyone can read this')
    (root/'locked.txt').write_text('nobody can read this'); os.chmod(root/'locked.txt', 0)
    (root/'closed').mkdir(); (root/'closed'/'a.txt').write_text('hidden'); os.chmod(root/'closed', 0)
    try:
        env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')])}
        try:
            r = subprocess.run([sys.executable, '-c', CHILD, str(root)], preexec_fn=_drop_root_file_powers,
                               env=env, capture_output=True, text=True, timeout=60)
        except (subprocess.SubprocessError, OSError) as e: pytest.skip(f"cannot drop capabilities here: {e}")
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got['open.txt'] == 1
        assert 'permission denied' in got['locked.txt']
        assert got['closed/'].startswith('unreadable folder')
    finally: os.chmod(root/'closed', 0o755)
