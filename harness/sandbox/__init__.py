"""Sandbox runtimes and the end-to-end sandbox task (TC_CLAUDE_PROXY_E2E_SMOKE)."""
