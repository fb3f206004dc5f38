"""Where the shared conformance data lives (read in place, never copied): real model-signing
signatures and Sigstore bundles with their expected verdicts."""

from __future__ import annotations

from pathlib import Path

CONFORMANCE = (Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance").resolve()
