"""The apps on top of an embedding model: paraphrase and near-duplicates, clustering, intents.

Each module takes an ``Embedder`` and plain Python data, so the CLI, the server and tests call
the same functions:

- ``paraphrase``: ``ParaphraseDetector`` (calibrated paraphrase probability), ``calibrate``,
  ``find_duplicates``;
- ``cluster``: ``cluster_texts`` (centred average-linkage by default; Ward, k-means,
  HDBSCAN on request; representatives, c-TF-IDF keywords),
  ``plot_clusters``;
- ``intent``: ``IntentMatcher`` (k-NN or nearest centroid; abstains on what sits
  closer to everyday Turkish than to any intent),
  ``evaluate_intents``, ``plot_confusion``.
"""

from anlam.apps.cluster import Cluster, ClusterResult, cluster_embeddings, cluster_keywords, cluster_texts, plot_clusters
from anlam.apps.intent import (
    UNKNOWN,
    IntentMatch,
    IntentMatcher,
    evaluate_intents,
    load_intent_eval,
    load_intents,
    plot_confusion,
)
from anlam.apps.paraphrase import (
    CALIBRATION_FILE,
    Calibration,
    DuplicateGroup,
    ParaphraseDetector,
    ParaphraseResult,
    calibrate,
    find_duplicates,
    fit_calibration,
    mltr_calibration_pairs,
    read_pairs,
)

__all__ = [
    "CALIBRATION_FILE",
    "UNKNOWN",
    "Calibration",
    "Cluster",
    "ClusterResult",
    "DuplicateGroup",
    "IntentMatch",
    "IntentMatcher",
    "ParaphraseDetector",
    "ParaphraseResult",
    "calibrate",
    "cluster_embeddings",
    "cluster_keywords",
    "cluster_texts",
    "evaluate_intents",
    "find_duplicates",
    "fit_calibration",
    "load_intent_eval",
    "load_intents",
    "mltr_calibration_pairs",
    "plot_clusters",
    "plot_confusion",
    "read_pairs",
]
