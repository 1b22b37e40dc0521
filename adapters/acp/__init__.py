"""Passthrough for agents that speak ACP themselves (Gemini CLI, OpenCode, Qwen, Goose,
the Zed adapters, a user's own)."""

from adapters.acp.adapter import AcpAdapter, create

__all__ = ["AcpAdapter", "create"]
