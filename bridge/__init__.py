"""agent-bridge: one ACP v1 daemon in front of every coding agent."""

__version__ = "0.1.0"
