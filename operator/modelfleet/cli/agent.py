"""``modelfleet agent``: registered from the agent's own command line
(:mod:`modelfleet.agent.command`, which ``modelfleet-agent`` runs without the rest of the CLI)."""

from modelfleet.agent.command import register, run

__all__ = ["register", "run"]
