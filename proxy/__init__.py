"""ccp: a compact routing shim in front of Claude Code."""
