"""fairseq-r3f: R3F and R4F robust fine-tuning (Aghajanyan et al., ICLR 2021) for fairseq.

Load with ``fairseq-train --user-dir <path to this package> ...`` or ``import fairseq_r3f``.
Importing it (1) lets fairseq load its checkpoints under torch >= 2.6 with
``weights_only`` still on, (2) makes ``--spectral-norm-classification-head`` build a
1-Lipschitz head (R4F), and (3) registers the criterions ``sentence_prediction_r3f``,
``label_smoothed_cross_entropy_r3f`` (summarization), ``sentence_prediction_smart`` (SMART), the
tasks ``sentence_prediction_adv`` (FreeLB) and ``sentence_prediction_probe`` (linear probing of
a frozen encoder, Sec. 4), and the BPE ``wordpiece``.
"""

from .checkpoint_safety import allow_fairseq_checkpoints
from .lipschitz_head import install as _install_lipschitz_head

allow_fairseq_checkpoints()
_install_lipschitz_head()

from . import criterions  # noqa: E402,F401
from . import probe_task  # noqa: E402,F401  (task sentence_prediction_probe)
from . import wordpiece  # noqa: E402,F401  (registers --bpe wordpiece)
from . import tasks  # noqa: E402,F401  (sentence_prediction_adv: FreeLB)

__version__ = "0.1.0"
