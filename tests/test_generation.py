"OpenAICompatibleGenerator (the official openai client) over real HTTP against the stub server in openai_stub.py (127.0.0.1 only)."
import logging, os, threading, time
import pytest
from genai_accel.core.config import Settings
from genai_accel.generative.generation import GeneratorError, GenerationRequest, OpenAICompatibleGenerator, get_generator
from openai_stub import serve


def client(srv, **kw):
    kw = {'api_key': srv.api_key, **kw}
    return OpenAICompatibleGenerator(Settings(env={}), base_url=srv.base_url, **kw)


def test_generate_sends_messages_and_options():
    with serve() as srv:
        g = client(srv).generate([{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hello there'}],
                                 max_new_tokens=50, temperature=0.2, seed=3)
        assert (g.text, g.finish_reason, g.model) == ('You said: Hello there', 'stop', 'stub-model')
        assert (g.prompt_tokens, g.completion_tokens) == (4, 4)
        body = srv.requests[-1][2]
        assert (body['max_tokens'], body['temperature'], body['seed'], body['stream']) == (50, 0.2, 3, False)
        assert g.timings['total_s'] >= g.timings['ttft_s'] > 0


def test_model_defaults_to_first_listed_and_settings_are_read():
    with serve(models=['m-a', 'm-b']) as srv:
        s = Settings(env={'GENAI_ACCEL_GENERATION_BACKEND': 'openai', 'GENAI_ACCEL_GENERATION_API_BASE': srv.base_url,
                          'GENAI_ACCEL_GENERATION_API_KEY_ENV': 'STUB_KEY_FOR_TEST'})
        import os
        os.environ['STUB_KEY_FOR_TEST'] = srv.api_key
        try: gen = get_generator(s)
        finally: del os.environ['STUB_KEY_FOR_TEST']
        assert isinstance(gen, OpenAICompatibleGenerator)
        assert gen.model_id == 'm-a'
        assert gen.generate('x').model == 'm-a'


def test_streaming_yields_pieces_in_order():
    with serve() as srv:
        st = client(srv).stream('alpha beta gamma delta')
        pieces = list(st)
        assert len(pieces) >= 5 and ''.join(pieces) == 'You said: alpha beta gamma delta'
        assert srv.requests[-1][2]['stream'] is True
        assert (st.generation.text, st.generation.completion_tokens, st.generation.finish_reason) == \
               ('You said: alpha beta gamma delta', 6, 'stop')


def test_stop_strings_and_max_tokens():
    with serve() as srv:
        gen = client(srv)
        st = gen.stream('one two three four', stop=['three'])
        assert ''.join(st) == 'You said: one two '
        assert srv.requests[-1][2]['stop'] == ['three']
        g = gen.generate('one two three four', max_new_tokens=3)
        assert (g.text, g.finish_reason) == ('You said: one', 'length')


def test_retries_429_then_succeeds_honouring_retry_after():
    with serve(fail_with=[429, 429, 503], retry_after=0.2) as srv:
        t0 = time.perf_counter()
        g = client(srv, max_retries=3).generate('again')
        assert g.text == 'You said: again'
        assert len([r for r in srv.requests if r[0] == 'POST']) == 4
        assert time.perf_counter() - t0 >= 0.6  # three waits of Retry-After 0.2 s


def test_gives_up_after_max_retries():
    with serve(fail_with=[429] * 5) as srv:
        with pytest.raises(GeneratorError, match=r'answered 429 \(tried 3 times\): Rate limit reached; wait'):
            client(srv, max_retries=2).generate('x')
        assert len([r for r in srv.requests if r[0] == 'POST']) == 3


def test_server_errors_are_retried_after_a_backoff():
    with serve(fail_with=[500, 502]) as srv:
        t0 = time.perf_counter()
        assert client(srv, max_retries=2).generate('x').text == 'You said: x'
        assert len([r for r in srv.requests if r[0] == 'POST']) == 3
        assert time.perf_counter() - t0 >= 0.3  # the client waits between tries (exponential backoff from 0.5 s less jitter)


def test_401_names_the_key_variable():
    with serve() as srv:
        with pytest.raises(GeneratorError, match=r'rejected the API key.*set OPENAI_API_KEY'):
            client(srv, api_key='wrong').generate('x')


def test_no_key_sends_no_header_and_a_401_names_the_variable(monkeypatch):
    monkeypatch.delenv('GENAI_ACCEL_TEST_LLM_KEY', raising=False)
    s = Settings(env={'GENAI_ACCEL_GENERATION_API_KEY_ENV': 'GENAI_ACCEL_TEST_LLM_KEY'})
    with serve(api_key=None) as srv:  # a local server without auth: works without a key
        assert OpenAICompatibleGenerator(s, base_url=srv.base_url).generate('hi').text == 'You said: hi'
        assert all('authorization' not in h for h in srv.seen_headers)
    with serve() as srv:
        with pytest.raises(GeneratorError, match=r'needs an API key \(401\) and none is set: set the environment variable GENAI_ACCEL_TEST_LLM_KEY'):
            OpenAICompatibleGenerator(s, base_url=srv.base_url, model='stub-model').generate('hi')
    monkeypatch.setenv('GENAI_ACCEL_TEST_LLM_KEY', 'test-key')
    with serve() as srv:  # the key is read from the variable settings name, not from OPENAI_API_KEY
        assert OpenAICompatibleGenerator(s, base_url=srv.base_url).generate('hi').text == 'You said: hi'
        assert srv.seen_headers[-1]['authorization'] == 'Bearer test-key'


def test_the_key_is_never_logged_or_shown(caplog):
    secret = 'sk-genai-accel-test-0123456789abcdef'
    caplog.set_level(logging.DEBUG)  # the openai client and its HTTP library log requests at DEBUG
    with serve(api_key=secret, fail_with=[500]) as srv:
        gen = client(srv, max_retries=1)
        assert gen.generate('x').text == 'You said: x' and ''.join(gen.stream('y')) == 'You said: y'
        bad = client(srv, api_key=secret[::-1])
        with pytest.raises(GeneratorError) as e:
            bad.generate('x')
    assert any(r.name.startswith('openai') for r in caplog.records)  # the debug logs were on
    for text in (caplog.text, repr(gen), repr(bad), str(e.value)):
        assert secret not in text and secret[::-1] not in text


def test_unknown_model_lists_available_ones():
    with serve(models=['small', 'large']) as srv:
        with pytest.raises(GeneratorError) as e:
            client(srv, model='nope').generate('x')
        msg = str(e.value)
        assert f"model 'nope' not found on {srv.base_url}; available: small, large" in msg
        assert 'generation.api_model' in msg


def test_timeout_says_which_setting_to_raise():
    with serve(delay_s=1.5) as srv:
        t0 = time.perf_counter()
        with pytest.raises(GeneratorError, match=r'no answer from .* within 0.3 s: raise generation.timeout_s'):
            client(srv, timeout_s=0.3, model='stub-model', max_retries=0).generate('x')
        assert time.perf_counter() - t0 < 1.4  # the timeout cut the wait, not the server's answer


def test_a_timeout_is_retried():
    with serve(delay_s=0.6) as srv:
        with pytest.raises(GeneratorError, match=r'within 0.2 s \(tried 2 times\)'):
            client(srv, timeout_s=0.2, model='stub-model', max_retries=1).generate('x')
        assert len([r for r in srv.requests if r[0] == 'POST']) == 2


def test_unreachable_server():
    with serve() as srv: url = srv.base_url  # closed on exit: nothing listens there now
    gen = OpenAICompatibleGenerator(Settings(env={}), base_url=url, model='m', max_retries=1)
    with pytest.raises(GeneratorError) as e:
        gen.generate('x')
    assert f'cannot reach {url}' in str(e.value) and 'generation.api_base' in str(e.value)


def test_batch_runs_concurrently_and_keeps_order():
    with serve(delay_s=0.3) as srv:
        gen = client(srv, model='stub-model')
        t0 = time.perf_counter()
        out = gen.batch([GenerationRequest(f'q{i}') for i in range(6)] + ['plain string'])
        assert [g.text for g in out] == [f'You said: q{i}' for i in range(6)] + ['You said: plain string']
        assert time.perf_counter() - t0 < 0.3 * 7 / 2
