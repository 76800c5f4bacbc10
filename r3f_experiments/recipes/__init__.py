"""The recipes' hyper-parameter tables, one module per family, and what is built from them.

- ``glue``: paper Tables 5-6, SMART's and FreeLB's settings;
- ``summarization``: Tables 7-8 and the generation settings;
- ``xnli``: Table 9.

Each value is written once, in its table. The shell recipes (``scripts/glue/train.sh``,
``scripts/summarization/*/train.sh``, ``scripts/xnli/train.sh``) run the ``fairseq-train`` command
built here (``python -m r3f_experiments.recipes command ...``), and the ``fairseq-hydra-train``
configs under ``configs/`` are generated from the same settings
(``python -m r3f_experiments.recipes write-configs``; a test checks the checked-in files).
"""
