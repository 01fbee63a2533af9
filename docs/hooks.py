"""MkDocs hook: a line `::: genai_accel.x` in a page becomes the API reference of that module (every name in its
`__all__`), or of every module of that package, rendered by nbdev's own show_doc from the docstrings and the
docments (the `# comment` after each parameter), as nbdev-docs would."""
import importlib, pkgutil, re

_SOURCE_LINK = re.compile(r'^\[source\]\(.*\)\{.*\}\s*$', re.M)  # Quarto attribute syntax; MkDocs would print it

def _render(obj)->str:
    from nbdev.showdoc import BasicMarkdownRenderer
    try: md = BasicMarkdownRenderer(obj)._repr_markdown_()
    except Exception:  # an annotation that cannot be evaluated here: the signature as written, and the docstring
        import inspect
        try: sig = str(inspect.signature(obj, eval_str=False))
        except (TypeError, ValueError): sig = '(...)'
        md = f"### {obj.__name__}\n\n```python\n{obj.__name__}{sig}\n```\n\n*{inspect.getdoc(obj) or ''}*\n"
    return _SOURCE_LINK.sub('', md).replace('\n---\n', '\n', 1)

def module_reference(name:str, level:int=2)->str:
    "Markdown for module `name`: its docstring, then each public function and class."
    mod = importlib.import_module(name)
    out = [f"{'#' * level} `{name}`", '', (mod.__doc__ or '').split('\n\nDocs:')[0].strip(), '']
    for sym in getattr(mod, '__all__', []):
        obj = getattr(mod, sym, None)
        if callable(obj) and getattr(obj, '__module__', None) == name: out += [_render(obj), '']
        elif obj is not None and not callable(obj): out += [f"`{sym}` = `{obj!r}`"[:300], '']
    return '\n'.join(out)

def reference(name:str)->str:
    "The reference of a module, or of every module of a package (its `__init__` first)."
    mod = importlib.import_module(name)
    if not hasattr(mod, '__path__'): return module_reference(name)
    parts = [f"{(mod.__doc__ or '').split(chr(10) * 2 + 'Docs:')[0].strip()}", '']
    for m in sorted(pkgutil.iter_modules(mod.__path__), key=lambda m: m.name):
        if not m.name.startswith('_'): parts.append(module_reference(f'{name}.{m.name}'))
    return '\n'.join(parts)

def on_page_markdown(markdown, page, config, files, **kwargs):
    return re.sub(r'^:::\s*(genai_accel[\w.]*)\s*$', lambda m: reference(m.group(1)), markdown, flags=re.M)
