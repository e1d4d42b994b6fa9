"""The worker side: broker and middleware, actors, the progress poller and the scheduler.

Read in data-path order: ``broker`` -> ``middleware`` -> ``actors`` -> ``start`` (claim and
Lambda start) -> ``poller`` (progress sweeps) -> ``scheduler`` (the periodic tick).
"""
