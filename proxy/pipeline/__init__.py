"""One model request, transport-independent: prepare, send, relay, finish; the shared state."""
