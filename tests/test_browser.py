"""JupyterLab in a real browser: a real JupyterLab server and Debian's Chromium, driven by Playwright for Python.

One lab server and one browser for the module. The server serves a copy of the home notebook (nbs/index.ipynb), so
that the browser's autosave never writes into nbs/; the tour writes into a temporary folder (GENAI_ACCEL_TOUR_DIR).
The first test runs the whole notebook in the browser; the others use the widgets it displayed: the corpus
explorer lists the planted duplicate, the Playground answers a question with its sources and stores a thumbs-up,
the retrieval debugger and the evaluation explorer are rendered. Screenshots go to SHOTS (printed; override with
GENAI_ACCEL_SCREENSHOTS). Skipped only where Chromium or Playwright is not installed (`make browser`)."""
import json, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']
SHOTS = Path(os.environ.get('GENAI_ACCEL_SCREENSHOTS') or ROOT/'tests'/'artifacts'/'screenshots')
TOKEN = 'browser-test-token'

def _skip_reason():
    if not Path(CHROMIUM).exists(): return f"Chromium is not installed ({CHROMIUM}): run `make browser` (apt-get install chromium)"
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return "playwright is not installed: `make install` (it is in the dev extra)"
    return None

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    if (why := _skip_reason()): pytest.skip(why)
    tmp = tmp_path_factory.mktemp('lab')
    (tmp/'nbs').mkdir(); shutil.copy(ROOT/'nbs'/'index.ipynb', tmp/'nbs'/'index.ipynb')
    settings = tmp/'settings'/'@jupyterlab'/'notebook-extension'
    settings.mkdir(parents=True)  # render every cell (no virtual scrolling), so the page holds every output
    (settings/'tracker.jupyterlab-settings').write_text(json.dumps({'windowingMode': 'none'}))
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp/'rt'), 'JUPYTER_CONFIG_DIR': str(tmp/'cfg'),
           'JUPYTERLAB_SETTINGS_DIR': str(tmp/'settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(tmp/'lab-ws'),
           'GENAI_ACCEL_TOUR_DIR': str(tmp/'tour'), 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    bindir = Path(sys.executable).parent
    log = open(tmp/'lab.log', 'w')
    p = subprocess.Popen([str(bindir/'jupyter'), 'lab', '--notebook-dir', str(tmp/'nbs'), '--ServerApp.ip=127.0.0.1',
                          f'--ServerApp.port={port}', f'--IdentityProvider.token={TOKEN}', '--no-browser',
                          '--LabApp.expose_app_in_browser=True'] + (['--allow-root'] if os.geteuid() == 0 else []),
                         stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(120):
            try: urllib.request.urlopen(f'{url}/api/status?token={TOKEN}', timeout=2); break
            except OSError: time.sleep(0.5)
        else: pytest.fail(f'jupyter lab did not answer within 60 s; log: {(tmp/"lab.log").read_text()[-2000:]}')
        yield dict(url=url, tour=tmp/'tour', tmp=tmp)
    finally:
        p.terminate(); p.wait(timeout=30); log.close()

@pytest.fixture(scope='module')
def page(lab):
    from playwright.sync_api import sync_playwright
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f'\nscreenshots: {SHOTS}')
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        pg = browser.new_page(viewport={'width': 1400, 'height': 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()

def _widget(page, css:str):
    "The rendered widget with this CSS class, scrolled into view."
    loc = page.locator(css).first
    loc.scroll_into_view_if_needed()
    return loc

def test_home_notebook_runs_in_jupyterlab(lab, page):
    "JupyterLab opens the home notebook; Run All executes every cell in the project's kernel without an error."
    page.goto(f"{lab['url']}/lab/tree/index.ipynb?token={TOKEN}")
    page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=120_000)
    # nbdev-clean keeps no kernelspec in the notebook, so JupyterLab asks once, proposing the project's kernel
    select = page.locator('.jp-Dialog button.jp-mod-accept')
    select.wait_for(timeout=60_000)
    assert 'genai_accel' in page.locator('.jp-Dialog').inner_text()
    select.click()
    page.wait_for_function("""() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
               && w.sessionContext.session.kernel.status === 'idle'; }""", timeout=120_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    done = page.wait_for_function("""() => { const t = document.querySelector('.jp-Notebook').innerText;
        return t.includes('Tour finished:') ? 'done' : (t.includes('Traceback (most recent call last)') ? 'error' : false); }""",
        timeout=480_000, polling=1000).json_value()
    page.screenshot(path=str(SHOTS/'01_home_notebook_end.png'))
    text = page.locator('.jp-Notebook').inner_text()
    assert done == 'done', text[text.find('Traceback') - 2000:][:4000]
    assert '1 duplicate' in text and 'email 1' in text  # the ingest manifest's summary line, rendered
    assert (lab['tour']/'workspace'/'state.sqlite').is_file()

def test_corpus_explorer_lists_the_planted_duplicate(lab, page):
    ex = _widget(page, '.genai-accel-corpus-explorer')
    ex.locator('select').first.select_option('duplicates')
    page.wait_for_function("""() => { const e = document.querySelector('.genai-accel-corpus-explorer');
        return e && e.innerText.includes('duplicate_of') && e.innerText.includes('pass'); }""")
    ex.screenshot(path=str(SHOTS/'02_corpus_explorer_duplicates.png'))
    rows = ex.locator('table.genai-accel-table tbody tr').all_inner_texts()
    assert len(rows) == 1 and 'pass' in rows[0] and 'default/pass' in rows[0], rows

def test_playground_answers_with_sources_and_stores_feedback(lab, page):
    from playwright.sync_api import expect
    from genai_accel.data.store import open_store, feedback_records, interaction_records
    box = page.get_by_placeholder('Ask a question about the documents')
    box.scroll_into_view_if_needed()
    box.fill('What does the break statement do?')
    pg = page.locator('.widget-vbox', has=page.get_by_placeholder('Ask a question about the documents')).last
    page.get_by_role('button', name='Ask', exact=True).click()
    expect(pg).to_contain_text('Sources', timeout=180_000)  # the answer rendered, with its sources
    pg.screenshot(path=str(SHOTS/'03_playground_answer.png'))
    assert 'break.md' in pg.inner_text(), pg.inner_text()[:2000]
    page.get_by_role('button', name='👍 helpful').click()
    expect(pg).to_contain_text('feedback stored', timeout=60_000)
    pg.screenshot(path=str(SHOTS/'04_playground_feedback.png'))
    con = open_store(lab['tour']/'workspace', readonly=True)
    try:
        asks = {r['id']: r for r in interaction_records(con) if r['kind'] == 'ask' and r['source'] == 'widget'}
        stored = [f for f in feedback_records(con) if f['interaction_id'] in asks]
    finally: con.close()
    assert len(stored) == 1 and stored[0]['thumbs'] == 1, [dict(f) for f in stored]
    assert asks[stored[0]['interaction_id']]['question'] == 'What does the break statement do?'

def test_retrieval_debugger_and_eval_explorer_render(lab, page):
    dbg = _widget(page, '.genai-accel-retrieval-debugger')
    t = dbg.inner_text()
    assert 'hybrid_rank' in t and 'dense_score' in t and 'break.md' in t and 'Filtered out' in t, t[:1500]
    dbg.screenshot(path=str(SHOTS/'05_retrieval_debugger.png'))
    ev = _widget(page, '.genai-accel-eval-explorer')
    ev.locator('select').nth(2).select_option('unanswerable')  # the tag filter
    page.wait_for_function("""() => { const e = document.querySelector('.genai-accel-eval-explorer');
        const rows = e.querySelectorAll('table.genai-accel-table')[2].querySelectorAll('tbody tr');
        return rows.length > 0 && [...rows].every(r => r.innerText.includes('off')); }""")
    ev.screenshot(path=str(SHOTS/'06_eval_explorer_unanswerable.png'))
    assert 'Failures by stage' in ev.inner_text()

def test_monitoring_panel_renders(lab, page):
    "The monitoring panel shows the tour's interaction log as KPI windows, its plot and the (empty) alerts table."
    mon = _widget(page, '.genai-accel-monitoring-panel')
    t = mon.inner_text()
    assert 'windows' in t and 'volume' in t and 'latency_p95_ms' in t and 'Alerts' in t, t[:1500]
    assert mon.locator('img').count() >= 1  # the KPI trend plot
    mon.screenshot(path=str(SHOTS/'07_monitoring_panel.png'))
