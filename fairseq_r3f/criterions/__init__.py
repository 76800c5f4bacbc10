from . import (
    label_smoothed_cross_entropy_r3f,  # noqa: F401  (registers the criterion)
    sentence_prediction_r3f,  # noqa: F401  (registers the criterion)
    sentence_prediction_smart,  # noqa: F401  (registers the criterion)
)
