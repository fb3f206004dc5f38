"""Test helpers for signed models: keys, PKI, a private Sigstore instance, provenance.

Importable by every test suite as ``tests.trustkit``. The quickest way to a real signed artifact::

    from tests.trustkit import make_signed_model
    signed = make_signed_model(tmp_path)                  # single-file model, key-signed
    signed = make_signed_model(tmp_path, archive=True)    # model folder packed as model.tar
    signed.artifact, signed.signature, signed.policy_path, signed.digest, signed.public_key_pem

``SignedModel`` also unpacks as the 4-tuple ``(artifact, signature, policy_yaml_path, digest)``.
"""

from tests.trustkit.models import SignedModel, make_key, make_signed_model, write_policy

__all__ = ["SignedModel", "make_key", "make_signed_model", "write_policy"]
