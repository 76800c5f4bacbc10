"""The method's math as pure tensor functions (torch only; no fairseq, no model).

- ``noise``: draw R3F's z and add it to embeddings (paper, Eq. 3);
- ``divergence``: the symmetric KL between clean and noised outputs;
- ``adversarial``: the ascent steps of the baselines SMART and FreeLB;
- ``realised_noise``: how much of z survives the encoder's precision.
"""
