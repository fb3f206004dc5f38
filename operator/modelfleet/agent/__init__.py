"""The gateway agent: polls the fleet API, downloads, verifies, A/B-activates, health-checks,
rolls back locally and reports; plus the simulator that runs N agents in one process.

Public entry points: :mod:`modelfleet.agent.config` (the ``agent.yaml`` format).
"""
