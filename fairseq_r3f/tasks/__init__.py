from . import (
    sentence_prediction_adv,  # noqa: F401  (registers the task: FreeLB)
    sentence_prediction_probe,  # noqa: F401  (registers the task: linear probing)
)
