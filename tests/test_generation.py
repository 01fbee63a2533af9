"OpenAICompatibleGenerator over real HTTP against the stub server in openai_stub.py (127.0.0.1 only)."
import threading, time
import pytest
from genai_accel.core.config import Settings
from genai_accel.generative.generation import GeneratorError, GenerationRequest, OpenAICompatibleGenerator, get_generator
from openai_stub import serve


def client(srv, **kw):
    kw = {'api_key': srv.api_key, 'backoff_s': 0.01, **kw}
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
        with pytest.raises(GeneratorError, match='answered 429'):
            client(srv, max_retries=2).generate('x')
        assert len([r for r in srv.requests if r[0] == 'POST']) == 3


def test_backoff_without_retry_after_grows():
    with serve(fail_with=[500, 500]) as srv:
        t0 = time.perf_counter()
        assert client(srv, backoff_s=0.1).generate('x').text == 'You said: x'
        assert time.perf_counter() - t0 >= 0.3  # 0.1 + 0.2


def test_401_names_the_key_variable():
    with serve() as srv:
        with pytest.raises(GeneratorError, match=r'rejected the API key.*set OPENAI_API_KEY'):
            client(srv, api_key='wrong').generate('x')


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
            client(srv, timeout_s=0.3, model='stub-model').generate('x')
        assert time.perf_counter() - t0 < 1.4


def test_unreachable_server():
    with serve() as srv: url = srv.base_url  # closed on exit: nothing listens there now
    gen = OpenAICompatibleGenerator(Settings(env={}), base_url=url, model='m', max_retries=1, backoff_s=0.01)
    with pytest.raises(GeneratorError, match='cannot reach'):
        gen.generate('x')


def test_batch_runs_concurrently_and_keeps_order():
    with serve(delay_s=0.3) as srv:
        gen = client(srv, model='stub-model')
        t0 = time.perf_counter()
        out = gen.batch([GenerationRequest(f'q{i}') for i in range(6)] + ['plain string'])
        assert [g.text for g in out] == [f'You said: q{i}' for i in range(6)] + ['You said: plain string']
        assert time.perf_counter() - t0 < 0.3 * 7 / 2
