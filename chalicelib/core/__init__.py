"""Shared core: small pure primitives (config, clock, errors, the API's words, PII masking,
principals, resource names, settings, batch jobs, observability).

Standard library only, and nothing from the slices, the adapters or the HTTP surface
(`tests/unit/test_layout.py`): what talks to AWS is in `chalicelib.adapters`, the HTTP
surface in `chalicelib.api`.
"""
