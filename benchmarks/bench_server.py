"""Load on the HTTP server over loopback: requests/s and p50/p99 latency of /v1/embeddings, /v1/search and
/v1/answer at 1, 4 and 16 concurrent clients (threads), bounded in count and time, against the library in this
process. Prints the ratios the deployment issue asks for:
  embeddings at 16 clients vs one at a time (>= 3x), answers' aggregate tokens/s at 16 clients vs 1 (>= 4x),
  /v1/search latency at 1 client vs KnowledgeBase.search in-process (<= 1.3x).
Run: .venv/bin/python benchmarks/bench_server.py [--answers-max-tokens 32] [--seconds 40]"""
import argparse, http.client, json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np, httpx

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent/'genai-accel')
ENV = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', GENAI_ACCEL_SETTINGS=str(ROOT/'settings.ini'))
QUERIES = ['how does the for statement loop', 'assert statement debugging', 'try except finally clauses', 'with statement context manager',
           'if elif else', 'while loop break continue', 'assignment statements targets', 'pass statement placeholder']

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def cli(*a): return json.loads(subprocess.run([EXE, *map(str, a), '--json'], env=ENV, capture_output=True, text=True, check=True).stdout)

def load(url, key, path, body_of, clients, count, seconds):
    "Run `count` requests from `clients` threads (or stop after `seconds`); latencies, wall time, responses."
    lat, resp, lock, n = [], [], threading.Lock(), [0]
    t_end = time.time() + seconds
    host, port = url.rsplit('/', 1)[1].split(':')
    headers = {'Authorization': f'Bearer {key}', 'Content-Type': 'application/json'}
    def worker(w):
        # the standard library's keep-alive client: a light load generator, so the two shared cores go to the server
        c = http.client.HTTPConnection(host, int(port), timeout=300)
        try:
            while time.time() < t_end:
                with lock:
                    if n[0] >= count: return
                    i = n[0]; n[0] += 1
                t = time.perf_counter()
                c.request('POST', path, body=json.dumps(body_of(i)), headers=headers)
                r = c.getresponse(); data = r.read()
                dt = time.perf_counter() - t
                assert r.status == 200, (path, r.status, data[:300])
                with lock: lat.append(dt); resp.append(json.loads(data))
        finally: c.close()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex: list(ex.map(worker, range(clients)))
    return np.array(lat), time.perf_counter() - t0, resp

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--answers-max-tokens', type=int, default=32)
    ap.add_argument('--seconds', type=float, default=40)
    ap.add_argument('--only', default='', help="comma-separated endpoints to load, e.g. /v1/embeddings (default: all three)")
    ap.add_argument('--server-threads', type=int, default=None, help="the server's models.threads (default: settings.ini's); the library call keeps the default")
    a = ap.parse_args()
    if a.server_threads is not None: ENV['GENAI_ACCEL_MODELS_THREADS'] = str(a.server_threads)
    tmp = Path(tempfile.mkdtemp())
    from genai_accel.data.ingest import write_sample_corpus
    write_sample_corpus(tmp/'corpus', limit=40)
    global TOPICS
    TOPICS = sorted(p.stem for p in (tmp/'corpus').glob('*.md'))
    cli('ingest', tmp/'corpus', '--workspace', tmp/'ws')
    key = cli('keys', 'create', '--scopes', 'search,answer', '--groups', 'public', '--rpm', '0', '--token-quota', '0', '--workspace', tmp/'ws')['api_key']
    port = free_port(); url = f'http://127.0.0.1:{port}'
    p = subprocess.Popen([EXE, 'serve', '--workspace', tmp/'ws', '--port', str(port)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if httpx.get(url + '/readyz', timeout=2).status_code == 200: break
            except httpx.HTTPError: pass
            time.sleep(0.5)
        rows = {}
        bodies = {'/v1/embeddings': lambda i: {'model': 'genai-accel-embed', 'input': QUERIES[i % len(QUERIES)] + f' {i}'},
                  '/v1/search': lambda i: {'query': QUERIES[i % len(QUERIES)], 'k': 10},
                  # a different question each request (one per topic of the corpus), so no cache or repeat flatters a run
                  '/v1/answer': lambda i: {'question': f"What is {TOPICS[i % len(TOPICS)].replace('-', ' ')} in Python, and what does it do?",
                                           'max_tokens': a.answers_max_tokens, 'mode': 'hybrid'}}
        counts = {'/v1/embeddings': (100, 200, 400), '/v1/search': (100, 200, 400), '/v1/answer': (4, 8, 32)}
        for path in [p for p in bodies if not a.only or p in a.only.split(',')]:
            load(url, key, path, bodies[path], 2, 4, 30)  # warm-up
            for c, n in zip((1, 4, 16), counts[path]):
                lat, wall, resp = load(url, key, path, bodies[path], c, n, a.seconds)
                toks = sum(r['usage']['completion_tokens'] for r in resp) if path == '/v1/answer' else None
                rows[(path, c)] = dict(n=len(lat), rps=len(lat) / wall, p50_ms=1000 * np.percentile(lat, 50), p99_ms=1000 * np.percentile(lat, 99),
                                       tok_s=None if toks is None else toks / wall)
                r = rows[(path, c)]
                print(f"{path:16} clients={c:2}  n={r['n']:4}  {r['rps']:7.1f} req/s  p50 {r['p50_ms']:8.1f} ms  p99 {r['p99_ms']:8.1f} ms"
                      + ('' if toks is None else f"  {r['tok_s']:6.1f} tokens/s"), flush=True)
                if path == '/v1/answer':  # where an answer's time goes, mean seconds per stage (the server's own timings)
                    st = {k: float(np.mean([x['timings'].get(k, 0) for x in resp])) for k in ('retrieve', 'evidence', 'pack', 'ttft', 'generate', 'total')}
                    r['stages_s'] = st
                    print('    stages (mean s): ' + ', '.join(f"{k} {v:.2f}" for k, v in st.items())
                          + f"; answered {sum(not x['abstained'] for x in resp)}/{len(resp)}", flush=True)
        # the library call, in this process, one at a time (same workspace, same settings)
        from genai_accel.data.index import KnowledgeBase
        from genai_accel.core.config import Settings
        kb = KnowledgeBase(tmp/'ws', Settings())
        kb.search(QUERIES[0], k=10, groups=['public'])
        lib = []
        for i in range(100):
            t = time.perf_counter(); kb.search(QUERIES[i % len(QUERIES)], k=10, groups=['public']); lib.append(time.perf_counter() - t)
        lib_p50 = 1000 * np.percentile(lib, 50)
        print(f"library KnowledgeBase.search  p50 {lib_p50:.1f} ms")
        nan = float('nan')
        e = rows[('/v1/embeddings', 16)]['rps'] / rows[('/v1/embeddings', 1)]['rps'] if ('/v1/embeddings', 1) in rows else nan
        g = rows[('/v1/answer', 16)]['tok_s'] / rows[('/v1/answer', 1)]['tok_s'] if ('/v1/answer', 1) in rows else nan
        o = rows[('/v1/search', 1)]['p50_ms'] / lib_p50 if ('/v1/search', 1) in rows else nan
        print(f"embeddings 16 clients / 1 client: {e:.2f}x (target >= 3x)")
        print(f"answers aggregate tokens/s 16 clients / 1 client: {g:.2f}x (target >= 4x)")
        print(f"/v1/search p50 at 1 client / library call p50: {o:.2f}x (target <= 1.3x)")
        out = ROOT/'benchmarks'/'results'/('bench_server.json' if not a.only else 'bench_server_partial.json')
        out.write_text(json.dumps(dict(loadavg=os.getloadavg(), cpus=os.cpu_count(), answers_max_tokens=a.answers_max_tokens,
                                       rows={f"{p} c{c}": r for (p, c), r in rows.items()}, library_search_p50_ms=lib_p50,
                                       ratios=dict(embeddings_16_vs_1=e, answer_tokens_16_vs_1=g, search_overhead=o)), indent=1, default=float))
    finally:
        p.send_signal(signal.SIGTERM); p.wait(60); shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
