"""The flexpay-batch benchmark suite (issue 6): ``python -m benchmarks [--quick] [--only NAME]``.

Every figure is a ratio of two things measured in the same run against the bundled simulator
on loopback, so it holds on a noisy machine. Modules, one job each:

- ``data``: synthetic, valid onboarding CSV files.
- ``simproc``: the simulator in a child process that records every admission (time, class,
  admitted or 429), so the client's CPU is measured on its own and rates are seen server-side.
- ``engine``: one in-process run of the engine (``runner.run_job``), journal on or off.
- ``baselines``: what people write instead (aiolimiter script, aiometer, bare ``gather``).
- ``shared_limit``, ``bureau``: several processes on one Redis (the shared limiter; bureau
  jobs on the job queue with 1, 2 and 4 workers).
- ``utilisation``, ``overhead``, ``memory``, ``startup``: the six figures; ``plots`` and
  ``report`` turn them into PNGs and Markdown.
"""
