"""fairseq-r3f's experiments kit: everything that reproduces the paper around the plugin.

Data preparation (``data``), the Hugging Face converter, the hyper-parameter tables of the
recipes (``recipes``), the seed sweep and its report, probing, benchmarks (``bench``), ROUGE
scoring and the demo's table. Modules import fairseq (and the plugin) only where they need it,
so data and report commands start in well under a second.
"""
