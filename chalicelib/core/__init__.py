"""Shared core: config, errors, money, clock, HTTP plumbing, AWS clients, observability.

Imports nothing from the feature slices (auth, loans, risk, repay).
"""
