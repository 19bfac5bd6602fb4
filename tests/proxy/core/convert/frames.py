"""What a converter wrote, read strictly: each frame holds only `event:` and `data:` lines, and the
frames are split as a client splits them (the shim's own splitter is under test, so not it)."""


def sse_events(out: bytes, strict: bool = True) -> list[tuple[str | None, str]]:
    events = []
    for frame in out.decode().split("\n\n"):
        if not frame:
            continue
        fields = dict(line.split(": ", 1) for line in frame.split("\n"))
        if strict:
            assert set(fields) <= {"event", "data"}, frame
        events.append((fields.get("event"), fields["data"]))
    return events
