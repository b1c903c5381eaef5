"""The checkpoint journal: one SQLite database (WAL, synchronous=FULL) per run, making it resumable.

One job per module, imports pointing down the list:

- ``files``: where the database is, its side files, 0600 creation, the writer lock.
- ``connection``: the writer's and readers' SQLite connections, write transactions.
- ``schema``: tables, schema version, in-place upgrade of older journals.
- ``jobinfo``: the job a journal belongs to (``JobInfo``), and whether a command may resume it.
- ``transitions``: what may happen to a row (``Register``, ``InFlight``, ``Done`` ...).
- ``statements``: the SQL of each transition and the batch optimiser.
- ``store``: ``Journal``, one process's write access: create, open, ``commit_batch``, reads.
- ``writer``: ``AsyncJournalWriter``, group commits from asyncio (the one buffering path).
- ``run_journal``: ``open_run_journal``, create / resume / restart a run's journal safely.
- ``status``: ``status_snapshot``, a read-only picture of a run from another process.
"""
