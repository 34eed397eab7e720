"""Generic maker-checker governance: versioned items, roles, the audit chain.

This app imports nothing from ``decisions`` or ``monitoring``; they build on it by
registering kinds (``governance.kinds``).
"""
