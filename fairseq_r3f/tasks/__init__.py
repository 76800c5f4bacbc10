from . import sentence_prediction_adv  # noqa: F401  (registers the task)
