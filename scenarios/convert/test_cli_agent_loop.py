"""The real `claude` CLI's agent loop through an OpenAI-protocol route whose provider streams the
awkward shapes real providers send (issue 17, point 6; the shapes are `harness.mock_shapes`).

Each case is one behaviour. The provider (the zai mock, routed as `glm-4.6` by `glm_shim`) answers the
main loop by conversation state — the first answer asks for a Write of a non-ASCII file and a Bash
command, later answers close the loop — and leaves Claude Code's side requests to its default rules.
Each case proves, with `claude -p … --output-format json --allowedTools Write,Bash`:

- the tools really ran: the file holds exactly the content asked for, the command's marker exists;
- the loop took the expected turns and ended with the expected result, and the CLI's usage is what
  the provider billed (input = prompt − cached, cache reads = cached, output = completion, summed
  over the main-loop answers, as 2.1.331 sums them), as are the shim's usage records;
- the next request the provider received pairs every `tool` message, right after its assistant
  `tool_calls` message, with its call, under the provider's own ids (fresh valid ids when it sent
  none), with the arguments the provider meant;
- every converted answer, replayed through the shim, is parsed by the official `anthropic` SDK
  into the message the provider meant, with a fresh message id each time.
"""
from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import pytest

from harness import mock_shapes as ms
from harness.cli_probe import cli_env, parse_cli_output
from scenarios.convert.conftest import GLM_KEY

pytestmark = [pytest.mark.repro, pytest.mark.repro_go, pytest.mark.sse]

MODEL = "glm-4.6"  # routed by glm_shim to the mock's /api/paas/v4/chat/completions
CLI_TIMEOUT = 60.0
CONTENT = 'Grüße aus ccp — 世界 😀\n"quoted" and \\ a backslash\n'
PROMPT = "Create the file and run the command, then say you are done."
REFUSAL = "I can't help with that request."
EXTRA = "UNEXPECTED EXTRA TURN"
VALID_ID = re.compile(r"^[A-Za-z0-9_-]+$")
TOOLS = [{"name": "Write", "description": "Write a file", "input_schema": {
              "type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
              "required": ["file_path", "content"]}},
         {"name": "Bash", "description": "Run a command", "input_schema": {
              "type": "object", "properties": {"command": {"type": "string"},
                                               "description": {"type": "string"}},
              "required": ["command"]}}]


@dataclass(frozen=True)
class Billed:
    """What the provider bills for one answer (OpenAI counting: `prompt` includes `cached`)."""

    prompt: int
    completion: int
    cached: int | None = None

    def usage(self) -> dict[str, Any]:
        return ms.usage(self.prompt, self.completion, self.cached)

    def anthropic(self) -> dict[str, int]:
        """The Anthropic usage the contract turns it into."""
        cached = self.cached or 0
        return {"input_tokens": self.prompt - cached, "cache_read_input_tokens": cached,
                "cache_creation_input_tokens": 0, "output_tokens": self.completion}


@dataclass
class Answer:
    """One main-loop answer: its chunks and the Anthropic message it must become."""

    chunks: list[bytes]
    blocks: list[tuple[str, Any]]  # ("text", str) / ("tool_use", (name, input))
    stop_reason: str
    billed: Billed
    calls: list[ms.Call] = field(default_factory=list)  # the provider's calls (ids as it sent them)


@dataclass
class Plan:
    answers: list[Answer]
    num_turns: int
    result: str


def _calls(case: str, work: Path, ids: tuple[str | None, str | None] = (None, None)) -> list[ms.Call]:
    write = {"file_path": str(work / f"{case}.txt"), "content": CONTENT}
    bash = {"command": f"printf '%s' 'ran {case} ✓' > {work / f'{case}.bash.txt'} && echo BASH_OK_{case}",
            "description": "Mark that the command ran"}
    return [ms.Call("Write", write, ids[0]), ms.Call("Bash", bash, ids[1])]


def _uses(calls: list[ms.Call]) -> list[tuple[str, Any]]:
    return [("tool_use", (c.name, c.arguments)) for c in calls]


def _done(case: str, billed: Billed) -> Answer:
    text = f"DONE {case}"
    return Answer(ms.text_answer(MODEL, text, usage_obj=billed.usage()), [("text", text)], "end_turn", billed)


FIRST, LAST = Billed(4200, 60), Billed(4800, 9)


def _tool_loop(case: str, work: Path, build: Callable[..., list[bytes]], ids=(None, None),
               first: Billed = FIRST, last: Billed = LAST, **kw: Any) -> Plan:
    """One answer with the Write + Bash calls in the shape `build` writes, then the closing text."""
    calls = _calls(case, work, ids)
    blocks = _uses(calls)
    if kw.get("between"):  # text before each call
        blocks = [part for text, use in zip(kw["between"], blocks) for part in (("text", text), use)]
    tools = Answer(build(MODEL, calls, usage_obj=first.usage(), **kw), blocks, "tool_use", first, calls)
    return Plan([tools, _done(case, last)], num_turns=1 + len(calls), result=f"DONE {case}")


def _refusal_loop(case: str, work: Path, finish_in_last: bool) -> Plan:
    """Tools first (so they really run), then a streamed refusal, then the closing text: Claude Code
    2.1.331 answers a refusal with a `<system-reminder>` user turn and goes on (`safety_stops`)."""
    plan = _tool_loop(case, work, ms.tool_calls, ids=(f"call_{case}_w", f"call_{case}_b"))
    billed = Billed(4500, 8)
    refused = Answer(ms.refusal(MODEL, REFUSAL, finish_in_last=finish_in_last, usage_obj=billed.usage()),
                     [("text", REFUSAL)], "refusal", billed)
    return Plan([plan.answers[0], refused, _done(case, Billed(4700, 9))], plan.num_turns + 1, plan.result)


CASES: dict[str, Callable[[str, Path], Plan]] = {
    "reused_index_new_ids": lambda case, work: _tool_loop(
        case, work, ms.reused_index_new_ids, ids=("call_ri_write_1", "call_ri_bash_2")),
    "reused_index_text_between_calls": lambda case, work: _tool_loop(
        case, work, ms.reused_index_new_ids, ids=("call_rt_write_1", "call_rt_bash_2"),
        between=["Writing the file.", "Now the command."]),
    "no_ids": lambda case, work: _tool_loop(case, work, ms.no_ids),
    "parallel_interleaved_cut_in_strings_and_escapes": lambda case, work: _tool_loop(
        case, work, ms.parallel_interleaved, ids=("call_pi_write_1", "call_pi_bash_2")),
    "kimi_style_ids": lambda case, work: _tool_loop(
        case, work, ms.kimi_style_ids, ids=("functions.Write:0", "functions.Bash:1")),
    "finish_stop_with_tool_calls": lambda case, work: _tool_loop(
        case, work, ms.finish_stop_with_tool_calls, ids=("call_fs_write_1", "call_fs_bash_2")),
    "refusal": lambda case, work: _refusal_loop(case, work, finish_in_last=False),
    "refusal_finish_in_same_chunk": lambda case, work: _refusal_loop(case, work, finish_in_last=True),
    "cached_usage": lambda case, work: _tool_loop(
        case, work, ms.tool_calls, ids=("call_cu_write_1", "call_cu_bash_2"),
        first=Billed(4200, 60, cached=3072), last=Billed(4800, 9, cached=4096)),
}


class Provider:
    """The provider's side of one agent loop, as a `MockUpstream` responder: the main-loop request
    with k assistant messages gets answer k; anything else (Claude Code's side requests: no tools,
    or the `max_tokens: 1` probe) gets the mock's default rules."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.served: list[tuple[int, dict[str, Any]]] = []
        self.side: list[dict[str, Any]] = []

    def __call__(self, payload: dict[str, Any]) -> list[bytes] | None:
        if not payload.get("tools") or payload.get("max_tokens") == 1:
            self.side.append(payload)
            return None
        k = sum(1 for m in payload.get("messages") or [] if m.get("role") == "assistant")
        self.served.append((k, payload))
        if k >= len(self.answers):  # ends the loop, so a wrong turn count fails fast, never hangs
            return ms.text_answer(MODEL, EXTRA, usage_obj=ms.usage(1, 1))
        return self.answers[k].chunks


def run_cli(binary: str, base_url: str, home: Path, work: Path) -> tuple[subprocess.CompletedProcess, dict]:
    home.mkdir()
    work.mkdir()
    cmd = [binary, "-p", PROMPT, "--model", MODEL, "--output-format", "json",
           "--allowedTools", "Write,Bash", "--no-session-persistence"]
    try:
        out = subprocess.run(cmd, env=cli_env(base_url, str(home)), cwd=work, stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-500:]
        pytest.fail(f"claude did not finish within {CLI_TIMEOUT:.0f}s; stdout tail: {tail!r}")
    return out, parse_cli_output(out.stdout.decode("utf-8", errors="replace"))


def tool_rounds(messages: list[dict[str, Any]]) -> list[list[tuple[dict, dict]]]:
    """Each assistant `tool_calls` message's (call, tool message) pairs, checking that its `tool`
    messages follow it directly, one per call, in order, and that no `tool` message stands alone."""
    rounds, i = [], 0
    while i < len(messages):
        msg = messages[i]
        assert msg.get("role") != "tool", f"a tool message without its call at {i}: {msg}"
        calls = msg.get("tool_calls") if msg.get("role") == "assistant" else None
        i += 1
        if not calls:
            continue
        results = messages[i:i + len(calls)]
        roles, ids = [m.get("role") for m in results], [m.get("tool_call_id") for m in results]
        assert roles == ["tool"] * len(calls), f"after the assistant tool_calls at {i - 1}: {roles}"
        assert ids == [c["id"] for c in calls], f"tool_call_ids {ids} != call ids {[c['id'] for c in calls]}"
        rounds.append(list(zip(calls, results)))
        i += len(calls)
    return rounds


def _detail(out: subprocess.CompletedProcess, data: dict, provider: Provider) -> str:
    """What a failure message shows: the CLI's outcome and the tool results it sent back last."""
    last = provider.served[-1][1]["messages"] if provider.served else []
    results = [_text(m.get("content"))[:300] for m in last if m.get("role") == "tool"]
    return (f"exit {out.returncode}; num_turns {data.get('num_turns')}; result {data.get('result')!r}; "
            f"last tool results {results}; stderr {out.stderr.decode(errors='replace')[-300:]!r}")


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def sdk_message(client: anthropic.Anthropic, mock, chunks: list[bytes]):
    """The converted answer to `chunks`, as the official SDK's stream parser builds it."""
    mock.set_responder(lambda payload: chunks)
    with client.messages.stream(model=MODEL, max_tokens=1024, tools=TOOLS,
                                messages=[{"role": "user", "content": "replay"}]) as stream:
        return stream.get_final_message()


def check_sdk_answer(client, mock, answer: Answer, case: str) -> None:
    first, second = sdk_message(client, mock, answer.chunks), sdk_message(client, mock, answer.chunks)
    blocks = []
    for block in first.content:
        if block.type == "text":
            blocks.append(("text", block.text))
        elif block.type == "tool_use":
            blocks.append(("tool_use", (block.name, block.input)))
        else:
            blocks.append((block.type, None))
    assert blocks == answer.blocks, f"{case}: the SDK's message has {blocks}"
    assert first.stop_reason == answer.stop_reason, f"{case}: stop_reason {first.stop_reason!r}"
    for msg in (first, second):
        assert msg.id.startswith("msg_") and VALID_ID.match(msg.id), msg.id
    assert first.id != second.id, f"{case}: two answers share the message id {first.id}"
    ids = [b.id for b in first.content if b.type == "tool_use"]
    assert all(VALID_ID.match(i) for i in ids) and len(set(ids)) == len(ids), f"{case}: tool ids {ids}"
    for call, tool_id in zip(answer.calls, ids):
        if call.id and VALID_ID.match(call.id):
            assert tool_id == call.id, f"{case}: a valid provider id {call.id} became {tool_id}"
        else:
            assert tool_id.startswith("toolu_"), f"{case}: provider id {call.id!r} gave {tool_id}"
    usage = {k: getattr(first.usage, k) for k in answer.billed.anthropic()}
    assert usage == answer.billed.anthropic(), f"{case}: SDK usage {usage}"


@pytest.mark.parametrize("case", list(CASES))
def test_cli_agent_loop(case, claude_bin, glm_shim, mock_zai, tmp_path, keys):
    work = tmp_path / "work"
    plan = CASES[case](case, work)
    provider = Provider(plan.answers)
    mock_zai.set_responder(provider)
    out, data = run_cli(claude_bin, glm_shim.url, tmp_path / "home", work)
    detail = _detail(out, data, provider)

    # the tools really ran
    target = work / f"{case}.txt"
    assert target.exists(), f"Write did not run: {detail}"
    assert target.read_bytes().decode("utf-8") == CONTENT
    assert (work / f"{case}.bash.txt").read_text("utf-8") == f"ran {case} ✓", f"Bash did not run: {detail}"

    # the loop: every answer asked for exactly once, in order; the CLI's own summary
    assert [k for k, _ in provider.served] == list(range(len(plan.answers))), (
        f"main-loop requests by assistant turns: {[k for k, _ in provider.served]}; {detail}")
    assert out.returncode == 0 and data.get("is_error") is False, detail
    assert data.get("subtype") == "success" and data.get("result") == plan.result, detail
    assert data.get("num_turns") == plan.num_turns, f"num_turns {data.get('num_turns')}; {detail}"
    assert data.get("permission_denials") == []
    if any(a.stop_reason == "refusal" for a in plan.answers):
        assert data.get("safety_stops") == 1, f"safety_stops {data.get('safety_stops')}"

    # usage: what the provider billed, summed over the main-loop answers
    want = {k: sum(a.billed.anthropic()[k] for a in plan.answers) for k in Billed(0, 0).anthropic()}
    got = {k: data["usage"].get(k) for k in want}
    assert got == want, f"the CLI reports usage {got}, the provider billed {want}"
    model_usage = data["modelUsage"][MODEL]
    assert (model_usage["inputTokens"], model_usage["cacheReadInputTokens"], model_usage["outputTokens"]) == (
        want["input_tokens"], want["cache_read_input_tokens"], want["output_tokens"])
    records = glm_shim.wait_for_records(len(plan.answers))
    loop_records = [r for r in records if r.get("lane") == "glm"]
    assert [(r["in_tokens"], r.get("cache_read_tokens") or 0, r["out_tokens"]) for r in loop_records] == [
        (a.billed.anthropic()["input_tokens"], a.billed.anthropic()["cache_read_input_tokens"],
         a.billed.completion) for a in plan.answers]

    # what the provider received next: every tool message right after its call, with its ids
    for k, payload in provider.served[1:]:
        answer = plan.answers[k - 1]
        rounds = tool_rounds(payload["messages"])
        prior = [a for a in plan.answers[:k] if a.calls]
        assert len(rounds) == len(prior), f"request {k}: {len(rounds)} tool rounds for {len(prior)} tool answers"
        last_round = rounds[-1] if rounds else []
        if answer.calls:
            ids = [call["id"] for call, _ in last_round]
            sent = [c.id for c in answer.calls]
            if all(sent):
                assert ids == sent, f"request {k}: the provider got ids {ids} back for its own {sent}"
            else:
                assert len(set(ids)) == len(ids) and all(VALID_ID.match(i) for i in ids), ids
            assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c, _ in last_round] == [
                (c.name, c.arguments) for c in answer.calls]
            write_result, bash_result = (_text(m["content"]) for _, m in last_round)
            assert "created successfully" in write_result, write_result
            assert f"BASH_OK_{case}" in bash_result, bash_result
        if answer.stop_reason == "refusal":
            assistant = [m for m in payload["messages"] if m.get("role") == "assistant"][-1]
            assert _text(assistant.get("content")) == REFUSAL and not assistant.get("tool_calls")
    assert len(mock_zai.calls) == len(provider.served) + len(provider.side)

    # every converted answer, parsed by the official SDK
    client = anthropic.Anthropic(base_url=glm_shim.url, api_key=keys["CLIENT_API_KEY"], max_retries=0,
                                 timeout=30)
    try:
        for answer in plan.answers:
            check_sdk_answer(client, mock_zai, answer, case)
    finally:
        client.close()
    assert all(c.headers.get("authorization") == f"Bearer {GLM_KEY}" for c in mock_zai.calls)
