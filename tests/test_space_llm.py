"""The LLM source against a local OpenAI-compatible server on 127.0.0.1, and its answer parser."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dpodiff.errors import UsageError
from dpodiff.spaces.build import build_space
from dpodiff.spaces.llm import LLMConfig, config_from, parse_answer

KEY = "sk-test-secret-0123456789"


class FakeServer:
    """Answers each POST with the next queued (status, body) pair; remembers the requests it saw."""

    def __init__(self):
        self.answers: list[tuple[int, bytes]] = []
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length", 0)), 100_000)
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(self.rfile.read(length))})
                status, body = outer.answers.pop(0) if outer.answers else (500, b"{}")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, content: str, status: int = 200):
        self.answers.append((status, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()))


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


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
