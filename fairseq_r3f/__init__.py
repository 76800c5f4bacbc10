"""fairseq-r3f: R3F and R4F robust fine-tuning (Aghajanyan et al., ICLR 2021) for fairseq.

Load with ``fairseq-train --user-dir <path to this package> ...`` or ``import fairseq_r3f``.
Importing it refuses, before it changes anything, to load beside another module that registers
its names (e.g. the authors' reference, ``examples/rxf/rxf_src``); otherwise it

1. lets fairseq load its checkpoints under torch >= 2.6 with ``weights_only`` still on
   (``checkpoint_safety``);
2. makes ``--spectral-norm-classification-head`` build a 1-Lipschitz head, R4F
   (``lipschitz_head``);
3. makes ``--amp`` on a CPU train under bfloat16 autocast (``cpu_amp``; fairseq's autocasts on
   CUDA only);
4. makes the hub (``RobertaModel.from_pretrained``) encode sentence pairs as the checkpoint was
   trained: no extra separator for a converted BERT (``hub``);
5. makes fairseq-train's start checkpoint safer (``resume``): an unreadable ``checkpoint_last.pt``
   resumes from the newest intact checkpoint; an optimizer state saved for the other head (plain /
   R4F) is refused, naming the flag; the task checks the checkpoint flags;
6. registers the criterions ``sentence_prediction_r3f`` (R3F/R4F), ``label_smoothed_cross_entropy_r3f``
   (R3F for summarization) and ``sentence_prediction_smart`` (SMART); the tasks
   ``sentence_prediction_adv`` (FreeLB) and ``sentence_prediction_probe`` (linear probing of a
   frozen encoder, Sec. 4); and the BPE ``wordpiece`` (models converted from BERT).

The method's math is in ``method/`` (pure tensor functions); ``perturb`` routes the noise into
fairseq's encoders. Data preparation, recipes, sweeps and benchmarks live in the separate
``r3f_experiments`` package.
"""

from .checkpoint_safety import (  # noqa: E402
    allow_fairseq_checkpoints,
    explain_unreadable_checkpoints,
    require_weights_only_torch,
)
from .registration import explain_clashes_of_later_user_dirs, refuse_registered_names, refuse_repeated_user_dir

# All or nothing: refuse before anything is patched or registered.
require_weights_only_torch()
refuse_repeated_user_dir()
refuse_registered_names()

from .checkpoint_heads import install as _install_checkpoint_heads  # noqa: E402
from .cpu_amp import install as _install_cpu_amp  # noqa: E402
from .hub import install as _install_hub  # noqa: E402
from .lipschitz_head import install as _install_lipschitz_head  # noqa: E402
from .resume import install as _install_resume  # noqa: E402

allow_fairseq_checkpoints()
explain_unreadable_checkpoints()
_install_lipschitz_head()
_install_checkpoint_heads()
_install_cpu_amp()
_install_resume()
_install_hub()
explain_clashes_of_later_user_dirs()

from . import (  # noqa: E402  (registered after the checks above)
    criterions,  # noqa: F401
    tasks,  # noqa: F401
    wordpiece,  # noqa: F401  (registers --bpe wordpiece)
)

__version__ = "0.1.0"
