"""The project's packaging: what a fresh clone installs must match what the docs and conda file say."""
import json, os, re, subprocess, sys, tomllib, zipfile
from pathlib import Path
from conftest import ROOT, run_cli

def _name(req): return re.split(r'[<>=!~\[ ;]', req, 1)[0].lower().replace('_', '-')

def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['dependencies']
    import yaml  # a dependency of papermill
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    pip = [r for d in env['dependencies'] if isinstance(d, dict) for r in d['pip'] if not r.startswith('-e')]
    assert sorted(pip, key=_name) == sorted(deps, key=_name), "environment.yml's pip list must equal pyproject's dependencies"

def test_nbdev_config_lives_in_pyproject():
    cfg = tomllib.loads((ROOT/'pyproject.toml').read_text())['tool']['nbdev']
    assert cfg['allowed_cell_metadata_keys'] == ['tags'] and 'slow' in cfg['tst_flags']

def test_console_script_installed():
    p = run_cli('--help')
    assert 'ingest' in p.stdout and 'search' in p.stdout and 'eval' in p.stdout

def test_wheel_ships_the_report_templates(tmp_path):
    "A wheel (not only the editable checkout) carries nbs/reports as genai_accel.report_templates, and uses them."
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--disable-pip-version-check', '--no-deps',
                    '--no-build-isolation', str(ROOT), '-w', str(tmp_path)], check=True, capture_output=True)
    whl = zipfile.ZipFile(next(tmp_path.glob('genai_accel-*.whl')))
    for name in ('readiness_assessment', 'model_evaluation'):
        assert f'genai_accel/report_templates/{name}.ipynb' in whl.namelist()
    site = tmp_path/'site'; whl.extractall(site)
    code = 'from genai_accel.reports import resolve_template; print(resolve_template("evaluation")[0])'
    p = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, 'PYTHONPATH': str(site)})
    assert p.returncode == 0, p.stderr
    assert Path(p.stdout.strip()) == site/'genai_accel'/'report_templates'/'model_evaluation.ipynb', p.stdout

def test_jupyterlab_opens_the_notebooks(tmp_path):
    "The setup installs JupyterLab with the project's kernel; `make lab`'s command serves nbs/ (real server, loopback)."
    import socket, time, urllib.request
    bindir = Path(sys.executable).parent
    specs = json.loads(subprocess.run([str(bindir/'jupyter'), 'kernelspec', 'list', '--json'], capture_output=True,
                                      text=True, check=True).stdout)['kernelspecs']
    assert 'python3' in specs, specs
    kernel = json.loads((Path(specs['python3']['resource_dir'])/'kernel.json').read_text())
    assert Path(kernel['argv'][0]).parent == bindir, kernel['argv']  # this venv's python
    assert 'lab:' in (ROOT/'Makefile').read_text() and '--notebook-dir=nbs' in (ROOT/'Makefile').read_text()
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    token = 'test-token-123'
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path/'rt'), 'JUPYTER_CONFIG_DIR': str(tmp_path/'cfg')}
    p = subprocess.Popen([str(bindir/'jupyter'), 'lab', '--notebook-dir', str(ROOT/'nbs'), '--ServerApp.ip=127.0.0.1',
                          f'--ServerApp.port={port}', f'--IdentityProvider.token={token}', '--no-browser'] + (['--allow-root'] if os.geteuid() == 0 else []),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        listing = None
        for _ in range(120):
            try:
                req = urllib.request.Request(f'http://127.0.0.1:{port}/api/contents', headers={'Authorization': f'token {token}'})
                listing = json.loads(urllib.request.urlopen(req, timeout=2).read()); break
            except OSError: time.sleep(0.5)
        assert listing is not None, 'jupyter lab did not answer within 60 s'
        names = {c['name'] for c in listing['content']}
        assert {'00_core.ipynb', '10_data.ipynb', 'reports'} <= names, names
        page = urllib.request.urlopen(urllib.request.Request(f'http://127.0.0.1:{port}/lab', headers={'Authorization': f'token {token}'}), timeout=10).read().decode()
        assert 'JupyterLab' in page
        # a notebook's content through the contents API: the home notebook, as JupyterLab opens it
        req = urllib.request.Request(f'http://127.0.0.1:{port}/api/contents/index.ipynb?content=1', headers={'Authorization': f'token {token}'})
        nb = json.loads(urllib.request.urlopen(req, timeout=10).read())
        assert nb['type'] == 'notebook' and nb['content']['cells'][0]['source'].startswith('# genai_accel'), nb.get('type')
    finally:
        p.terminate(); p.wait(timeout=30)
