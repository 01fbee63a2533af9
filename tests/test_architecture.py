"""The architecture as a checked contract: one package per layer, shipped in the wheel, and imports that run only
downwards (core <- data <- generative <- assessment/... <- reports, cli), checked by import-linter."""
import os, shutil, subprocess, sys, tomllib, zipfile
from pathlib import Path
import pytest
from conftest import ROOT

LINT = Path(sys.executable).parent/'lint-imports'

def layer_packages()->list[str]:
    "Every package under genai_accel/ (a folder with an __init__.py), as dotted names."
    return sorted('.'.join(p.parent.relative_to(ROOT).parts) for p in (ROOT/'genai_accel').rglob('__init__.py')
                  if '__pycache__' not in p.parts)

def _lint(root:Path, config:Path)->subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(root)}
    return subprocess.run([str(LINT), '--config', str(config), '--no-cache'], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)

def test_every_package_is_declared_and_layered():
    cfg = tomllib.loads((ROOT/'pyproject.toml').read_text())
    declared = set(cfg['tool']['setuptools']['packages'])
    pkgs = layer_packages()
    assert set(pkgs) <= declared, f"packages missing from [tool.setuptools] packages: {sorted(set(pkgs) - declared)}"
    layered = {m.strip() for line in cfg['tool']['importlinter']['contracts'][0]['layers'] for m in line.replace('|', ':').split(':')}
    top = [p for p in pkgs if p.count('.') == 1]
    assert set(top) <= layered, f"layer packages not in the import contract: {sorted(set(top) - layered)}"

def test_import_contract_holds():
    p = _lint(ROOT, ROOT/'pyproject.toml')
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'BROKEN' not in p.stdout and 'KEPT' in p.stdout

def test_import_contract_fails_on_a_violation(tmp_path):
    "A throwaway copy where the data layer imports the generative layer: the same check must fail and name it."
    shutil.copytree(ROOT/'genai_accel', tmp_path/'genai_accel', ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(ROOT/'pyproject.toml', tmp_path/'pyproject.toml')
    f = tmp_path/'genai_accel'/'data'/'cleaning.py'
    f.write_text(f.read_text() + '\nfrom ..generative import rag  # deliberate violation\n')
    p = _lint(tmp_path, tmp_path/'pyproject.toml')
    assert p.returncode == 1, p.stdout + p.stderr
    assert 'BROKEN' in p.stdout and 'genai_accel.data.cleaning -> genai_accel.generative.rag' in p.stdout, p.stdout

def test_wheel_imports_every_layer(tmp_path):
    "Every layer package ships in a built wheel and imports from it (not from the checkout)."
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--disable-pip-version-check', '--no-deps',
                    '--no-build-isolation', str(ROOT), '-w', str(tmp_path)], check=True, capture_output=True)
    whl = zipfile.ZipFile(next(tmp_path.glob('genai_accel-*.whl')))
    names = whl.namelist()
    pkgs = [p for p in layer_packages()]
    for p in pkgs: assert p.replace('.', '/') + '/__init__.py' in names, f'{p} is not in the wheel'
    site = tmp_path/'site'; whl.extractall(site)
    code = 'import importlib, sys\n' + ''.join(f'm = importlib.import_module({p!r}); assert m.__file__.startswith(sys.argv[1]), m.__file__\n' for p in pkgs)
    r = subprocess.run([sys.executable, '-c', code, str(site)], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, 'PYTHONPATH': str(site)})
    assert r.returncode == 0, r.stderr
