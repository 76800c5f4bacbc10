from . import label_smoothed_cross_entropy_r3f, sentence_prediction_r3f  # noqa: F401  (register)
