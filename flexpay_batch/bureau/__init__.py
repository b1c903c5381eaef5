"""Bureau jobs: many organisations' onboarding and payroll, from one manifest.

``manifest`` reads and validates the TOML manifest; ``job`` turns a manifest job into a
``BureauJob`` (safe to put on a queue) and runs it with ``run_bureau_job``, a plain async
function any host can call. The layer sits above the engine and below the command line.
"""
