"""Signed licences and policy packs: verification, the issuer, the policy loader."""
