"""Anthropic Messages SSE in, OpenAI `chat.completion.chunk` SSE out, chunk by chunk (pure, no I/O)."""

from __future__ import annotations

from proxy.core.convert.framing import Converter, loads_object, sse
from proxy.core.convert.responses import completion_id, finish_reason, openai_usage


class AnthropicToOpenAIStream(Converter):
    """Anthropic Messages SSE in, OpenAI `chat.completion.chunk` SSE out (ending `data: [DONE]`).

    `.usage` is kept in Anthropic terms (`input_tokens`, `output_tokens`, cache counters).
    """

    def __init__(self, model: str, created: int = 0) -> None:
        super().__init__()
        self.model = model
        self.created = created
        self.usage = {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        self._id = completion_id(None)
        self._started = False
        self._stop: str | None = None
        self._tool_index: dict[int, int] = {}

    def _data(self, data: str) -> None:
        if (obj := loads_object(data)) is not None:
            self._event(obj)

    def _answer_finished(self) -> bool:
        return self._stop is not None

    def _event(self, obj: dict) -> None:
        kind = obj.get("type")
        if kind == "message_start":
            message = obj.get("message") or {}
            self._id = completion_id(message.get("id"))
            self._usage(message.get("usage"))
            self._started = True
            self._chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = obj.get("content_block") or {}
            if block.get("type") == "tool_use":
                position = self._tool_index.setdefault(obj.get("index", 0), len(self._tool_index))
                self._chunk(
                    {
                        "tool_calls": [
                            {
                                "index": position,
                                "id": block.get("id", ""),
                                "type": "function",
                                "function": {"name": block.get("name", ""), "arguments": ""},
                            }
                        ]
                    }
                )
        elif kind == "content_block_delta":
            self._block_delta(obj.get("index", 0), obj.get("delta") or {})
        elif kind == "message_delta":
            self._stop = (obj.get("delta") or {}).get("stop_reason") or self._stop or "end_turn"
            self._usage(obj.get("usage"))
        elif kind == "message_stop":
            self._end()
        elif kind == "error":
            error = obj.get("error") or {}
            self._fail(error.get("message", "upstream error"), error.get("type", "api_error"))

    def _block_delta(self, index: int, delta: dict) -> None:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            self._chunk({"content": delta["text"]})
        elif kind == "thinking_delta" and delta.get("thinking"):
            self._chunk({"reasoning_content": delta["thinking"]})
        elif kind == "input_json_delta" and delta.get("partial_json") and index in self._tool_index:
            self._chunk(
                {
                    "tool_calls": [
                        {
                            "index": self._tool_index[index],
                            "function": {"arguments": delta["partial_json"]},
                        }
                    ]
                }
            )

    def _usage(self, usage: object) -> None:
        for key, value in (usage or {}).items() if isinstance(usage, dict) else ():
            if key in self.usage and isinstance(value, int):
                self.usage[key] = value

    def _chunk(self, delta: dict, finish: str | None = None, usage: dict | None = None) -> None:
        obj: dict = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": []
            if usage
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage:
            obj["usage"] = usage
        self._out.append(sse(None, obj))

    def _end(self) -> None:
        self._chunk({}, finish=finish_reason(self._stop))
        if self._started:
            self._chunk({}, usage=openai_usage(self.usage))
        self._out.append(sse(None, "[DONE]"))
        self.complete = self._ended = True

    def _fail(self, message: str, error_type: str = "api_error") -> None:
        self.error = message
        self._out.append(
            sse(
                None,
                {"error": {"message": message, "type": error_type, "param": None, "code": None}},
            )
        )
        self._out.append(sse(None, "[DONE]"))
        self._ended = True
