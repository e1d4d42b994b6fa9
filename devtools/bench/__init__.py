"""``python -m devtools.bench``: renderq's performance figures, each next to a bare baseline.

Why it is built this way:

* **Ratios, not absolute times.** It runs on shared 2-core machines whose speed changes from run
  to run. Each throughput figure is measured in the same run as the bare tool underneath it
  (Dramatiq with a no-op actor; boto3 ``invoke`` against the same emulator), and the ratio is
  what may be compared across runs and machines. Latencies are compared with fixed targets.
* **Real processes.** Redis (the one at ``REDIS_URL``, or a private one), SQLite and PostgreSQL
  databases of its own, the Lambda emulator, ``dramatiq worker.actors`` worker processes and the
  scheduler, wired by environment exactly like ``devtools.demo`` and production.
* **Nothing left behind.** Every section uses its own Redis namespace (deleted afterwards) and its
  own database (a SQLite file, or ``renderq_bench_<pid>_<n>`` on PostgreSQL, dropped afterwards);
  every process it starts is stopped, on Ctrl-C and SIGTERM too.

Sections (``--only`` takes a comma-separated subset; ``lifecycle`` and ``lifecycle_webhooks``
also run ``bare`` because their figures are ratios to it, ``memory`` runs ``lifecycle`` if
nothing else started workers):

``bare``                bare Dramatiq drain rate (messages/s), no-op actor, same broker settings
``lifecycle``           renders/s from ``enqueue_renders`` to ``complete`` (SQLite, PostgreSQL)
``lifecycle_webhooks``  the same on PostgreSQL, ends reported by webhooks to ``python -m web``
``start_latency``       enqueue -> Lambda ``start`` at the emulator, at a paced 100 renders/s
``completion_latency``  done at the emulator -> ``complete`` in the database, default interval
``poll_sweep``          one sweep over N renders in flight vs bare boto3 ``invoke`` calls/s
``enqueue``             producer renders/s, one at a time and in batches
``throttle``            rate-limit middleware cost per message (in-process, real Redis)
``memory``              peak RSS (VmHWM) of every ``dramatiq`` worker process of the runs above
``capacity``            fair admission to the Lambda budget: a noisy neighbour and a priority
                        class, the idle cost of thousands of parked renders (worker CPU, Redis
                        commands/s), two pools with AIMD shrink and recovery, oversized renders

It prints a table and a "targets" table and writes everything, with the machine and the
settings of each figure, to ``--out`` (JSON). It is a script that prints figures, never a timed
test: the smoke test only checks that it runs.

Modules: ``__main__`` (the command line), ``config`` (section names, sizes), ``context``
(``Bench``, the state the sections share), ``run`` (``Run``, one measurement's processes and
environment), ``support`` (processes, environments, databases, statistics), ``helpers``
(spawned helper processes: bare boto3, psycopg and webhook ceilings, in-flight set-up),
``bare_receiver`` (the ASGI app the bare webhook POSTs reach), ``common``
(requests, database reads, table formatting), ``targets`` and ``report`` (the targets table,
the printed tables and the JSON), ``noop`` (the no-op actor module of the bare workers), and
one module per section: ``bare``, ``lifecycle`` (with its floor), ``lifecycle_webhooks`` (with
its own), ``latency`` (start and
completion latency, one paced run), ``sweep``, ``enqueue``, ``throttle``, ``memory``,
``capacity``.

Nothing is imported here: ``dramatiq devtools.bench.noop`` and the spawned helpers import
this package too, and should pay only for the module they need.
"""
