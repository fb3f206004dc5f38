"""modelfleet: signed, gated, cohort-by-cohort rollouts of ML models to fleets of edge gateways."""

__version__ = "0.1.0"
