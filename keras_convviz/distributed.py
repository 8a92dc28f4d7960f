"""Who writes, and one choice for all, under multi-worker ``tf.distribute`` strategies.

``ConvVizCallback`` runs on every worker of a ``MultiWorkerMirroredStrategy``
(or parameter-server) cluster. Only the chief may write the run folder, and the
feature maps it follows must be the same on every worker even though their
statistics (BatchNorm, the data each saw) drift apart: the chief chooses and
the choice is broadcast with an all-reduce in which only global replica 0 (on
the chief) contributes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["current_strategy", "worker_count", "is_chief", "broadcast_from_chief"]


def current_strategy():
    """The strategy whose scope we are in, or None (the default strategy)."""
    return tf.distribute.get_strategy() if tf.distribute.has_strategy() else None


def worker_count(strategy) -> int:
    """Worker processes in ``strategy``'s cluster (1 without a cluster resolver)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, ())) for job in ("chief", "worker")) or 1


def is_chief(strategy) -> bool:
    """The task that writes: the ``chief`` task, else ``worker`` 0 (Keras' and TF's own rule)."""
    if strategy is None or worker_count(strategy) < 2:
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def broadcast_from_chief(strategy, values) -> np.ndarray:
    """``values`` (a fixed-shape numeric array) as the chief holds them, on every worker.

    A collective: every worker must call it, in the same order.
    """
    values = np.asarray(values, np.float64)
    if strategy is None or worker_count(strategy) < 2:
        return values

    def replica():
        ctx = tf.distribute.get_replica_context()
        first = tf.cast(tf.equal(ctx.replica_id_in_sync_group, 0), tf.float64)
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.constant(values) * first)

    return np.asarray(strategy.experimental_local_results(strategy.run(tf.function(replica)))[0])
