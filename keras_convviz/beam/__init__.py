"""Apache Beam: dataset-scale top-k activations (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 2).

``TopActivations(model_uri, layer, k)`` is a ``PTransform`` from ``(image_id,
image)`` records (preprocessed model inputs) to one
:class:`~keras_convviz.methods.topk.TopActivations` table. Workers batch the
images, reduce each to its per-map maxima with the same compiled code as
``top_activations`` (``methods.topk.per_image_maxima``), and an associative,
commutative ``CombineFn`` merges them with the same rule
(``methods.topk.merge_tables``): value descending, ties to the smaller image id.
So the table equals the in-process one exactly, on any runner and any split.
``batched=True`` takes ready ``(image_ids, images)`` batches instead. Read the
records on the workers: a ``beam.Create`` of images pickles and compresses
them into the pipeline graph, which costs more than mining them.

``python -m keras_convviz.beam --help`` runs the end-to-end pipeline (file
patterns or TFRecords in; per-shard partial tables, the JSON table and the
fig. 2 grid out; resumable) on DirectRunner, PrismRunner, DataflowRunner,
FlinkRunner or SparkRunner with Beam's standard pipeline options.
"""

from .transforms import ImageMaxima, TopActivations, TopKCombineFn, load_preset

__all__ = ["TopActivations", "TopKCombineFn", "ImageMaxima", "load_preset"]
