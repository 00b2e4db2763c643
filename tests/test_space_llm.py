"""The LLM source against a local OpenAI-compatible server on 127.0.0.1, and its answer parser."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dpodiff.errors import UsageError
from dpodiff.spaces.build import build_space
from dpodiff.spaces.llm import LLMConfig, config_from, parse_answer
from cli_runner import run_cli

KEY = "sk-test-secret-0123456789"


class FakeServer:
    """Answers each request with the next queued (status, body[, headers]); remembers every request it saw
    (GETs too: a redirect followed the browser way arrives as a GET) with all its headers."""

    def __init__(self):
        self.answers: list[tuple] = []
        self.requests: list[dict] = []
        self.delay = 0.0  # seconds to wait before answering: a slow or hung model
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length", 0)), 100_000)
                body = self.rfile.read(length) if length else b""
                outer.requests.append({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"),
                                       "headers": dict(self.headers), "body": json.loads(body) if body else None})
                status, body, *headers = outer.answers.pop(0) if outer.answers else (500, b"{}")
                time.sleep(outer.delay)
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **(headers[0] if headers else {})}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up waiting

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def reply(self, content: str, status: int = 200):
        self.answers.append((status, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture
def elsewhere():
    """A second server on another port: where a hostile or misconfigured endpoint redirects."""
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPODIFF_CACHE", str(tmp_path / "cache"))


def _config(server, **kw):
    return LLMConfig(server.url, "tiny-chat", KEY, timeout=5, retries=kw.pop("retries", 1), backoff=0.01, **kw)


def test_parse_messy_answers():
    answer = """Sure! Here are the substitutions:
1. **red** -> crimson, scarlet, "ruby", cherry.
- Car → automobile; vehicle / auto
* flies: soars, glides (moves through the air), hovers or drifts
snow =>
  - powder
  - sleet
city -> none
unrelated -> words, here
"""
    parsed = parse_answer(answer, ["red", "car", "flies", "snow", "city"])
    assert parsed["red"] == ["crimson", "scarlet", "ruby", "cherry"]
    assert parsed["car"] == ["automobile", "vehicle", "auto"]
    assert parsed["flies"] == ["soars", "glides", "hovers", "drifts"]
    assert parsed["snow"] == ["powder", "sleet"]
    assert parsed["city"] == []
    assert parse_answer("dog -> 1. puppy 2. hound 3. pooch", ["dog"])["dog"] == ["puppy", "hound", "pooch"]


def test_llm_space_through_a_local_server(server):
    server.reply("red -> blue, green, Red\ncar -> boat, train\nsnow -> rain, sand")
    space = build_space("A red car in the snow", "antonym", source="llm", llm=_config(server))
    slots = {s.name: s.choices[1:] for s in space.negative}
    assert slots == {"red": ["blue", "green"], "car": ["boat", "train"], "snow": ["rain", "sand"]}
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {KEY}"
    assert request["body"]["model"] == "tiny-chat" and "opposite" in request["body"]["messages"][0]["content"]
    assert KEY not in json.dumps(space.to_dict()) and KEY not in repr(_config(server))


def test_retries_then_succeeds(server):
    server.answers.append((503, b"{}"))
    server.reply("red -> crimson, scarlet")
    space = build_space("red", "synonym", source="llm", llm=_config(server, retries=2))
    assert space.positive[0].choices == ["red", "crimson", "scarlet"]
    assert len(server.requests) == 2


def test_server_down_is_a_usage_error(server):
    url = server.url
    server.httpd.shutdown()
    server.httpd.server_close()
    config = LLMConfig(url, "tiny-chat", KEY, timeout=2, retries=1, backoff=0.01)
    with pytest.raises(UsageError, match="could not be reached") as e:
        build_space("a red car", "synonym", source="llm", llm=config)
    assert KEY not in str(e.value)


def test_garbage_answers_are_usage_errors(server):
    server.reply("I am sorry, I cannot help with that.")
    with pytest.raises(UsageError, match="no 'word -> substitutes' line"):
        build_space("a red car", "synonym", source="llm", llm=_config(server))
    server.answers.append((200, b"<html>not json</html>"))
    with pytest.raises(UsageError, match="did not answer like an OpenAI"):
        build_space("a blue car", "synonym", source="llm", llm=_config(server))
    server.answers.append((401, b"{}"))
    with pytest.raises(UsageError, match="check the API key") as e:
        build_space("a green car", "synonym", source="llm", llm=_config(server))
    assert KEY not in str(e.value)


def test_config_from_options(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert config_from("http://127.0.0.1:1/v1", "m").key == "from-env"
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    config = config_from("http://127.0.0.1:1/v1", "m", key_file)
    assert config.key == KEY and config.endpoint == "http://127.0.0.1:1/v1/chat/completions"
    with pytest.raises(UsageError, match="--llm-model"):
        config_from("http://127.0.0.1:1", None)
    with pytest.raises(UsageError, match="http"):
        config_from("127.0.0.1:1", "m")
    with pytest.raises(UsageError, match="Cannot read the API key file"):
        config_from("http://127.0.0.1:1", "m", tmp_path / "missing")


# -- the key ---------------------------------------------------------------------------------------


def test_key_file_is_read_for_its_first_non_empty_line(tmp_path, server):
    key_file = tmp_path / "key"
    key_file.write_text(f"\n  {KEY}  \n# work key, expires in March\n")
    config = config_from(server.url, "m", key_file, timeout=5, retries=0)
    assert config.key == KEY
    server.reply("red -> crimson")
    build_space("red", "synonym", source="llm", llm=config)
    assert server.requests[0]["auth"] == f"Bearer {KEY}"
    key_file.write_text("\n \n")
    with pytest.raises(UsageError, match="is empty"):
        config_from(server.url, "m", key_file)


@pytest.mark.parametrize("bad", [KEY + "é", KEY + "中", "Bearer " + KEY, KEY + "\x7f", "“" + KEY + "”"])
def test_a_key_that_cannot_go_in_a_header_is_refused_without_showing_it(tmp_path, monkeypatch, bad):
    key_file = tmp_path / "key"
    key_file.write_text(bad + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match="cannot be sent in an HTTP header") as e:
        config_from("http://127.0.0.1:1", "m", key_file)
    assert KEY not in str(e.value) and str(key_file) in str(e.value)
    monkeypatch.setenv("OPENAI_API_KEY", bad)
    with pytest.raises(UsageError, match=r"\$OPENAI_API_KEY has a character") as e:
        config_from("http://127.0.0.1:1", "m")
    assert KEY not in str(e.value)
    with pytest.raises(UsageError, match="LLMConfig.key"):
        LLMConfig("http://127.0.0.1:1", "m", bad)


def test_a_key_file_that_is_not_utf8_is_refused(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY.encode() + b"\xe9\n")
    with pytest.raises(UsageError, match="cannot be sent in an HTTP header") as e:
        config_from("http://127.0.0.1:1", "m", key_file)
    assert KEY not in str(e.value)


# -- redirects -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_server_is_refused_and_gets_no_key(server, elsewhere, code):
    server.answers.append((code, b"", {"Location": elsewhere.url + "/v1/chat/completions"}))
    elsewhere.reply("red -> crimson")
    with pytest.raises(UsageError, match="redirected to another server") as e:
        build_space("red", "synonym", source="llm", llm=_config(server))
    assert server.url in str(e.value) and elsewhere.url in str(e.value) and KEY not in str(e.value)
    assert elsewhere.requests == []
    assert len(server.requests) == 1  # refused at once, not retried


def test_a_redirect_on_the_same_server_is_followed_with_the_same_request(server):
    server.answers.append((307, b"", {"Location": "/v1/chat/completions/"}))
    server.reply("red -> crimson")
    space = build_space("red", "synonym", source="llm", llm=_config(server))
    assert space.positive[0].choices == ["red", "crimson"]
    first, second = server.requests
    assert second["path"] == "/v1/chat/completions/" and second["method"] == "POST"
    assert second["auth"] == f"Bearer {KEY}" and second["body"] == first["body"]


# -- robustness ------------------------------------------------------------------------------------


def test_a_silent_endpoint_costs_the_timeouts_and_backoffs_and_the_defaults_about_30_seconds(server):
    """Measured at a tenth of the scale on a server that never answers in time: every try waits out its
    timeout, the pauses between tries double; the defaults then give up within about 30 seconds."""
    from dataclasses import replace

    from dpodiff.spaces.llm import substitutes

    server.delay = 5
    config = replace(config_from(server.url, "m", timeout=0.2, retries=2), backoff=0.1)
    t0 = time.perf_counter()
    with pytest.raises(UsageError, match="no answer within 0.2 s"):
        substitutes(config, "a red car", ["red", "car"], "synonym", 5)
    elapsed = time.perf_counter() - t0

    def worst(c):
        return c.timeout * (c.retries + 1) + sum(c.backoff * 2**i for i in range(c.retries))

    assert len(server.requests) == 3 and worst(config) - 0.05 <= elapsed <= worst(config) + 1.0  # 0.6 s of timeouts, 0.3 of pauses
    defaults = LLMConfig("http://127.0.0.1:1", "m")
    assert defaults.retries >= 1 and worst(defaults) <= 35


def test_a_slow_endpoint_fails_quickly_and_names_the_timeout(server, tmp_path):
    build_space("a red car", "synonym", source="wordnet", cache_dir=tmp_path / "warm")  # WordNet and the sense model load outside the clock
    server.delay = 3
    t0 = time.perf_counter()
    with pytest.raises(UsageError, match="no answer within 0.3 s"):
        build_space("a red car", "synonym", source="llm", llm=config_from(server.url, "m", timeout=0.3, retries=1))
    assert time.perf_counter() - t0 < 2.5 and len(server.requests) == 2
    code, err = run_cli("space", "a blue car", "--kind", "synonym", "--source", "llm", "--llm-url", server.url, "--llm-model", "m",
                        "--llm-timeout", 0.3, "--llm-retries", 0, "--out", tmp_path / "space.json")
    err = " ".join(err.split())
    assert code == 2 and "no answer within 0.3 s" in err and "raise --llm-timeout (now 0.3 s per request)" in err, err
    assert len(server.requests) == 3
    code, err = run_cli("space", "red", "--kind", "synonym", "--source", "llm", "--llm-url", server.url, "--llm-model", "m",
                        "--llm-timeout", 0, "--out", tmp_path / "space.json")
    assert code == 2 and "--llm-timeout must be a positive number" in " ".join(err.split())


def test_an_answer_with_no_usable_substitute_is_an_error_and_not_cached(server, tmp_path):
    args = ["space", "red", "--kind", "synonym", "--source", "llm", "--llm-url", server.url, "--llm-model", "m", "--out", tmp_path / "s.json"]
    server.reply("red -> the, a")  # parsed, but only stopwords: nothing survives
    code, err = run_cli(*args)
    assert code == 2 and "No synonyms found" in " ".join(err.split())
    server.reply("red -> crimson")
    code, err = run_cli(*args)
    assert code == 0, err
    assert len(server.requests) == 2  # the second run asked again
    assert json.loads((tmp_path / "s.json").read_text())["positive"][0]["choices"] == ["red", "crimson"]


# -- no error path shows the key -------------------------------------------------------------------


def _redirect(server, elsewhere):
    server.answers.append((302, b"", {"Location": elsewhere.url + "/v1/chat/completions"}))


FAILURES = {  # name: (set the servers up, what the message says)
    "key": (None, "cannot be sent in an HTTP header"),
    "401": (lambda s, e: s.answers.append((401, b"{}")), "check the API key"),
    "500": (lambda s, e: None, "could not be reached after 2 tries (last error: HTTP 500"),
    "redirect": (_redirect, "redirected to another server"),
    "garbage": (lambda s, e: s.answers.append((200, b"<html>not json</html>")), "did not answer like an OpenAI"),
    "empty": (lambda s, e: s.reply("I am sorry, I cannot help with that."), "no 'word -> substitutes' line"),
    "timeout": (lambda s, e: setattr(s, "delay", 2), "raise --llm-timeout"),
}


@pytest.mark.parametrize("command", ["space", "improve"])
@pytest.mark.parametrize("failure", FAILURES)
def test_no_failure_shows_the_key_even_with_debug(server, elsewhere, tmp_path, failure, command, request):
    setup, message = FAILURES[failure]
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    key_file = secret_dir / "key"
    key_file.write_text(KEY + ("é" if failure == "key" else "") + "\nsecond line: a note\n", encoding="utf-8")
    if setup:
        setup(server, elsewhere)
    llm = ["--llm-url", server.url, "--llm-model", "m", "--llm-key-file", key_file, "--llm-timeout", 0.5, "--llm-retries", 1]
    out = tmp_path / "out"
    if command == "space":
        out.mkdir()
        args = ["space", "a red car", "--kind", "synonym", "--source", "llm", *llm, "--out", out / "space.json"]
    else:
        models = ["--model", request.getfixturevalue("tiny_model_dir"), "--scorer", request.getfixturevalue("tiny_scorer_dir")]
        args = ["improve", "a red car", "--space-source", "llm", *llm, "--budget", 2, "--steps", 2, "--out", out, *models]
    code, err = run_cli(*args, "--debug")
    assert code == 2 and message in " ".join(err.split()), err
    assert "Traceback" in err and "UsageError" in err  # --debug shows where it failed
    assert KEY not in err
    written = [p for p in tmp_path.rglob("*") if p.is_file() and secret_dir not in p.parents]
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    assert all(r["auth"] is None for r in elsewhere.requests) and elsewhere.requests == []


def test_an_unexpected_error_quoting_the_key_is_printed_scrubbed(server, tmp_path, monkeypatch):
    import dpodiff.spaces.llm as llm_module

    def leaky(config, text):
        raise ValueError(f"Invalid header value b'Bearer {config.key}\\n# note'")

    monkeypatch.setattr(llm_module, "ask", leaky)
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    args = ["space", "red", "--kind", "synonym", "--source", "llm", "--llm-url", server.url, "--llm-model", "m",
            "--llm-key-file", key_file, "--out", tmp_path / "s.json"]
    for extra in ([], ["--debug"]):
        code, err = run_cli(*args, *extra)
        assert code == 1 and "ValueError: Invalid header value b'" in err and "***" in err and KEY not in err, err
