"""Bureau jobs: many organisations' onboarding and payroll, from one manifest.

``manifest`` reads and validates the TOML manifest; ``job`` turns a manifest job into a
``BureauJob`` (safe to put on a queue) and runs it with ``run_bureau_job``, a plain async
function any host can call. ``local`` is ``run MANIFEST``: every job checked first, then run in
this process in the order ``schedule`` decides (round robin by organisation, one job per
token at a time); ``outcome`` says how each ended and the run's exit code; ``progress`` is the
one display all the jobs report to. The layer sits above the engine and below the command line.
"""
