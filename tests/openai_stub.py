"""A small OpenAI-compatible server for tests: real HTTP on 127.0.0.1, stdlib only.

It serves GET /v1/models and POST /v1/chat/completions (JSON or stream=true server-sent events). The answer
echoes the last user message ("You said: ..."), so tests can check what reached the server. Attributes of
`StubServer` script failures: a wrong key gives 401, an unknown model 404, `fail_with` answers the listed
status codes first (e.g. [429, 503]), `delay_s` waits before answering (timeouts); `api_key=None` accepts
any request. `requests` and `seen_headers` record what arrived.

    with serve() as srv: OpenAICompatibleGenerator(base_url=srv.base_url, api_key=srv.api_key)
    python tests/openai_stub.py --port 8080   # run standalone
"""
from __future__ import annotations
import contextlib, json, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port=0, api_key='test-key', models=('stub-model',), fail_with=(), retry_after=None, delay_s=0.0):
        super().__init__(('127.0.0.1', port), _Handler)
        self.api_key, self.models, self.fail_with = api_key, list(models), list(fail_with)
        self.retry_after, self.delay_s, self.requests = retry_after, delay_s, []
        self.seen_headers = []  # the request headers (names lower-cased), in order (e.g. to check that no Authorization header was sent)
        self.base_url = f'http://127.0.0.1:{self.server_address[1]}/v1'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args): pass

    def _json(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        for k, v in (headers or {}).items(): self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code, message, typ, headers=None):
        self._json(code, {'error': {'message': message, 'type': typ, 'code': typ}}, headers)

    def _authorised(self):
        srv = self.server
        if srv.api_key and self.headers.get('Authorization') != f'Bearer {srv.api_key}':
            self._error(401, 'Incorrect API key provided.', 'invalid_api_key'); return False
        return True

    def do_GET(self):
        self.server.requests.append(('GET', self.path, None)); self.server.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
        if not self._authorised(): return
        if self.path != '/v1/models': return self._error(404, f'no route {self.path}', 'not_found')
        self._json(200, {'object': 'list', 'data': [{'id': m, 'object': 'model', 'owned_by': 'stub'} for m in self.server.models]})

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get('Content-Length') or 0)) or b'{}')
        srv.requests.append(('POST', self.path, body)); srv.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
        if srv.delay_s: time.sleep(srv.delay_s)
        if srv.fail_with:
            code = srv.fail_with.pop(0)
            hdr = {'Retry-After': str(srv.retry_after)} if srv.retry_after is not None else None
            return self._error(code, 'Rate limit reached' if code == 429 else 'server error', 'scripted_failure', hdr)
        if not self._authorised(): return
        if self.path != '/v1/chat/completions': return self._error(404, f'no route {self.path}', 'not_found')
        model = body.get('model')
        if model not in srv.models:
            return self._error(404, f'The model `{model}` does not exist.', 'model_not_found')
        msgs = body.get('messages') or []
        last = next((m['content'] for m in reversed(msgs) if m.get('role') == 'user'), '')
        words, finish = f'You said: {last}'.split(' '), 'stop'
        if body.get('max_tokens') is not None and len(words) > body['max_tokens']:
            words, finish = words[:body['max_tokens']], 'length'
        text = ' '.join(words)
        for s in body.get('stop') or []:
            if s in text: text, finish = text[:text.index(s)], 'stop'
        usage = {'prompt_tokens': sum(len(m.get('content', '').split()) for m in msgs),
                 'completion_tokens': len(text.split()), 'total_tokens': 0}
        base = {'id': 'chatcmpl-stub', 'created': int(time.time()), 'model': model}
        if not body.get('stream'):
            return self._json(200, {**base, 'object': 'chat.completion', 'usage': usage, 'choices': [
                {'index': 0, 'message': {'role': 'assistant', 'content': text}, 'finish_reason': finish}]})
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        self.send_header('Cache-Control', 'no-cache')
        self.send_header('Connection', 'close')
        self.end_headers()
        def event(obj): self.wfile.write(f'data: {json.dumps(obj)}\n\n'.encode()); self.wfile.flush()
        pieces = [w if i == 0 else ' ' + w for i, w in enumerate(text.split(' '))]
        event({**base, 'object': 'chat.completion.chunk', 'choices': [{'index': 0, 'delta': {'role': 'assistant'}}]})
        for p in pieces:
            event({**base, 'object': 'chat.completion.chunk', 'choices': [{'index': 0, 'delta': {'content': p}, 'finish_reason': None}]})
        event({**base, 'object': 'chat.completion.chunk', 'choices': [{'index': 0, 'delta': {}, 'finish_reason': finish}]})
        if (body.get('stream_options') or {}).get('include_usage'):
            event({**base, 'object': 'chat.completion.chunk', 'choices': [], 'usage': usage})
        self.wfile.write(b'data: [DONE]\n\n'); self.wfile.flush()
        self.close_connection = True


@contextlib.contextmanager
def serve(**kwargs):
    "A running `StubServer` on a free port of 127.0.0.1, shut down on exit."
    srv = StubServer(**kwargs)
    t = threading.Thread(target=srv.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    t.start()
    try: yield srv
    finally:
        srv.shutdown(); srv.server_close(); t.join(5)


if __name__ == '__main__':
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--api-key', default='test-key')
    a = ap.parse_args()
    srv = StubServer(a.port, a.api_key)
    print(f'serving {srv.base_url}')
    srv.serve_forever()
