"""The control verbs (`ccp pause`, `resume`, `set`, `model`, `providers reload`, the `controls:`
block of `ccp status`) against the real app served from a thread over real HTTP, with a fake
upstream: what the upstream received after each verb, and the one line printed when nothing
answers."""
import asyncio
import io
import json
import socket
import sys

import httpx
import pytest
from aiohttp import web

from harness.threaded import ThreadedServer
from proxy.cli import controls as cc
from proxy.cli import override, providers
from proxy.cli.usage import status_main
from proxy.config.load import load_settings
from proxy.pipeline.state import STATE
from proxy.server.app import create_app

pytestmark = pytest.mark.quick

HAIKU = "claude-haiku-4-5-20251001"
ADMIN = "adm-0123456789"
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
           "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 2}}


class Answer:
    status, h2, is_sse, headers = 200, False, False, [("content-type", "application/json")]

    async def read(self):
        return json.dumps(MESSAGE).encode()

    def release(self):
        pass

    def close(self):
        pass


class Upstream:
    def __init__(self):
        self.requests = []

    async def send(self, request):
        self.requests.append(request)
        return Answer()


class LiveShim(ThreadedServer):
    """The app on 127.0.0.1 port 0 in its own thread, with the fake upstream."""

    _thread_name = "live-shim"

    def __init__(self, env: dict) -> None:
        self.env, self.upstream = env, Upstream()

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.app = create_app(load_settings(self.env), self.upstream)
        self.app[STATE].load_settings = lambda: load_settings(self.env)
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self._port = self.runner.addresses[0][1]

    async def _close(self) -> None:
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def haiku(self) -> tuple[str, dict, dict]:
        """One haiku request through the shim: (upstream URL, headers, body) it caused."""
        r = httpx.post(f"{self.url}/v1/messages", headers={"x-api-key": "client-key"},
                       json={"model": HAIKU, "max_tokens": 5,
                             "messages": [{"role": "user", "content": "hi"}]},
                       trust_env=False, timeout=10)
        assert r.status_code == 200
        req = self.upstream.requests[-1]
        return req.url, {k.lower(): v for k, v in req.headers.items()}, json.loads(req.body)

    def records(self) -> list[dict]:
        path = self.app[STATE].writer.path
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The shim's environment; the CLI's own is the same (one config home: the same model file)."""
    values = {"CCP_LOGS_DIR": str(tmp_path / "logs"), "CCP_CONFIG_HOME": str(tmp_path / "home"),
              "ZAI_API_KEY": "zai-key-0123456789", "CCP_PERSIST": "0",
              "CCP_ZAI_BASE_URL": "http://zai.test/api/anthropic",
              "CCP_ANTHROPIC_BASE_URL": "http://anth.test"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def shim(env):
    with LiveShim(env) as live:
        yield live


@pytest.fixture
def nobody():
    """A URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_pause_and_resume_on_the_running_shim(shim, capsys):
    assert shim.haiku()[0].startswith("http://zai.test/")
    assert cc.pause_main(["--url", shim.url]) == 0
    out = capsys.readouterr().out
    assert out == (f"ccp pause: paused on {shim.url} from the next request (was not paused): "
                   "every request goes to the anthropic lane\n")
    assert shim.haiku()[0] == "http://anth.test/v1/messages"
    assert cc.pause_main(["--url", shim.url]) == 0
    assert "ccp pause: already paused" in capsys.readouterr().out
    assert cc.resume_main(["--url", shim.url]) == 0
    assert "not paused" in capsys.readouterr().out
    assert shim.haiku()[0].startswith("http://zai.test/")
    changes = [r["control"] for r in shim.records() if r["op"] == "control"]
    assert [(c["to"], c["by"]) for c in changes] == [
        (True, "POST /v1/admin/controls (ccp pause)"),
        (False, "POST /v1/admin/controls (ccp resume)")]


def test_set_zai_header_mode(shim, capsys):
    assert cc.set_main(["zai-header-mode", "bearer", "--url", shim.url]) == 0
    assert "zai header mode authorization" in capsys.readouterr().out
    headers = shim.haiku()[1]
    assert headers["authorization"] == "Bearer zai-key-0123456789" and "x-api-key" not in headers
    with pytest.raises(SystemExit):  # argparse names the choices
        cc.set_main(["zai-header-mode", "token", "--url", shim.url])
    assert "invalid choice: 'token' (choose from 'x-api-key', 'authorization', 'bearer')" in \
        capsys.readouterr().err


def test_model_applies_persists_shows_and_clears(shim, env, tmp_path, capsys):
    model_file = tmp_path / "home" / "model"
    assert override.main(["claude-opus-4-1", "--url", shim.url]) == 0
    out = capsys.readouterr().out
    assert f"applied on the running shim {shim.url} from the next request" in out
    assert model_file.read_text() == "claude-opus-4-1\n"
    url, _, body = shim.haiku()
    assert url == "http://anth.test/v1/messages" and body["model"] == "claude-opus-4-1"
    assert override.main(["--url", shim.url]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"manual override: claude-opus-4-1 (running shim {shim.url}; runtime, ")
    assert "by POST /v1/admin/controls (ccp model)" in out
    assert override.main(["--clear", "--url", shim.url]) == 0
    out = capsys.readouterr().out
    assert "override claude-opus-4-1 cleared from the next request" in out
    assert not model_file.exists()
    url, _, body = shim.haiku()
    assert url.startswith("http://zai.test/") and body["model"] == HAIKU


def test_model_refuses_a_name_nothing_serves(shim, tmp_path, capsys):
    assert override.main(["gpt-5", "--url", shim.url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("UsageError: nothing changed: model 'gpt-5': no lane or route serves it")
    assert "haiku, sonnet, opus (aliases)" in err
    assert not (tmp_path / "home" / "model").exists()
    assert shim.haiku()[2]["model"] == HAIKU
    assert [r for r in shim.records() if r["op"] == "control"] == []


def test_without_a_shim_one_line_and_the_model_file_for_the_next_start(env, nobody, tmp_path,
                                                                       capsys):
    for main, argv in ((cc.pause_main, []), (cc.resume_main, []),
                       (cc.set_main, ["zai-header-mode", "authorization"])):
        assert main([*argv, "--url", nobody]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"NotRunning: no shim answers on {nobody} (profile default): "
                              "nothing changed") and err.count("\n") == 1
    assert providers.main(["reload", "--url", nobody]) == 1
    assert "nothing reloaded" in capsys.readouterr().err
    assert override.main(["gpt-5", "--url", nobody]) == 2  # refused here too, by this catalog
    assert "no lane or route serves it" in capsys.readouterr().err
    assert override.main(["claude-sonnet-4-5", "--url", nobody]) == 0
    out = capsys.readouterr().out
    assert f"no shim answers on {nobody}: it applies when the shim starts" in out
    assert (tmp_path / "home" / "model").read_text() == "claude-sonnet-4-5\n"
    assert override.main(["--url", nobody]) == 0
    assert "manual override: claude-sonnet-4-5 (from " in capsys.readouterr().out


def test_an_admin_token_is_sent_when_set_and_its_absence_is_one_line(env, monkeypatch, capsys):
    with LiveShim({**env, "CCP_ADMIN_TOKEN": ADMIN}) as shim:
        assert cc.pause_main(["--url", shim.url]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ConfigError: the shim on {shim.url} refused the admin call")
        assert shim.haiku()[0].startswith("http://zai.test/")
        monkeypatch.setenv("CCP_ADMIN_TOKEN", ADMIN)
        assert cc.pause_main(["--url", shim.url]) == 0
        assert shim.haiku()[0] == "http://anth.test/v1/messages"


def test_providers_reload(env, tmp_path, monkeypatch, capsys):
    file = tmp_path / "providers.yaml"
    file.write_text("providers: {}\n")
    with LiveShim({**env, "CCP_PROVIDERS_FILE": str(file), "ALT_KEY": "alt-0123456789"}) as shim:
        file.write_text("providers:\n  alt: {base_url: 'http://alt.test', key_env: ALT_KEY,"
                        " routes: [{name: claude-haiku-4-5-20251001, model: alt-haiku}]}\n")
        assert providers.main(["reload", "--url", shim.url]) == 0
        out = capsys.readouterr().out
        assert "3 providers (anthropic, zai, alt), 1 route(s), from the next request" in out
        url, _, body = shim.haiku()
        assert url == "http://alt.test/v1/messages" and body["model"] == "alt-haiku"
        file.write_text("providers: [")
        assert providers.main(["reload", "--url", shim.url]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ConfigError: providers not reloaded, the old catalog stays: ")
        assert "invalid YAML" in err
        assert shim.haiku()[0] == "http://alt.test/v1/messages"
        # this environment reads the broken file too: it says so, and asks no shim
        monkeypatch.setenv("CCP_PROVIDERS_FILE", str(file))
        assert providers.main(["reload", "--url", shim.url]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ConfigError: ") and "invalid YAML" in err
        assert "no shim was asked; a running shim keeps what it has" in err
        assert [r["control"]["name"] for r in shim.records() if r["op"] == "control"] == [
            "providers"]


def test_status_starts_with_the_controls_block(shim, nobody, capsys):
    cc.set_main(["zai-header-mode", "authorization", "--url", shim.url])
    capsys.readouterr()
    assert status_main(["--url", shim.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"controls (running shim {shim.url}):"
    assert lines[1].split()[:3] == ["paused", "no", "default"]
    assert lines[2].split()[:5] == ["zai", "header", "mode", "authorization", "runtime,"]
    assert lines[2].endswith("by POST /v1/admin/controls (ccp set)")
    assert lines[3].split()[:4] == ["model", "override", "-", "default"]
    assert lines[4].split()[:9] == ["providers", "built-in", "lanes", "only:", "2", "providers",
                                    "(anthropic,", "zai),", "0"]
    assert "route(s); loaded " in lines[4] and lines[4].endswith("(default built-in)")
    assert lines[5].startswith("ccp status — running shim")
    cc.print_controls(load_settings(), nobody, out := io.StringIO())
    assert out.getvalue().startswith(f"controls: no shim answers on {nobody}; what the next "
                                     "start would use:")


@pytest.mark.parametrize("status,problem,code,first", [
    (None, "ConnectError", 1, "NotRunning: no shim answers on U (profile default): nothing"),
    (400, "bad", 2, "UsageError: bad"),
    (401, "admin token required", 2, "ConfigError: the shim on U refused the admin call: admin"),
    (404, "no such endpoint", 1, "NotSupported: the shim on U has no runtime controls"),
    (500, "boom", 1, "ShimError: U answered 500: boom"),
])
def test_failures_are_one_line_each(status, problem, code, first, capsys):
    reply = cc.Reply("U", status, {}, problem)
    assert cc.failed(reply, load_settings({}), "nothing changed", sys.stderr) == code
    err = capsys.readouterr().err
    assert err.startswith(first) and err.count("\n") == 1
