"""Kiro accounts: the store and pool (leases, cooldowns), token refresh, quotas, sign-ins, import/export.

The credential type is Kiro's (kiro/credentials.py); this package keeps and schedules accounts.
"""
from __future__ import annotations
