from setuptools import find_namespace_packages, find_packages, setup

setup(
    name="fairseq-r3f",
    version="0.1.0",
    description="R3F/R4F robust fine-tuning (Aghajanyan et al., ICLR 2021) as a fairseq plugin, "
    "with the experiments that reproduce the paper",
    license="MIT",
    # fairseq_r3f: the plugin (what --user-dir loads); r3f_experiments: data preparation,
    # recipes' hyper-parameter tables, sweeps, probing, benchmarks and reports;
    # hydra_plugins.fairseq_r3f_user_dirs: Hydra runs it in every fairseq-train, and it refuses a
    # --user-dir fairseq_r3f followed by another --user-dir, which fairseq would load instead.
    packages=find_packages(include=["fairseq_r3f", "fairseq_r3f.*", "r3f_experiments", "r3f_experiments.*"])
    + find_namespace_packages(include=["hydra_plugins.*"]),
    python_requires=">=3.10",
    # fairseq-fixed is installed by scripts/setup.sh with --no-build-isolation --no-deps
    # (its declared torchaudio requirement would replace torch); it is not pinned here
    # so that `pip install -e .` never tries to rebuild it in an isolated environment.
    # torch >= 2.6: torch.load defaults to weights_only=True, which the checkpoint allow-list
    # (fairseq_r3f/checkpoint_safety.py) relies on; older torch would unpickle anything.
    install_requires=[
        "torch>=2.6",
        "numpy",
        "omegaconf>=2.1",
        "hydra-core>=1.1",
        "sentencepiece",
        "matplotlib",
        "rouge-score",
        "safetensors",
        "tokenizers",
        "submitit",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist", "scikit-learn", "ruff==0.17.5"],
        "peer": ["transformers>=4.40"],  # the peer check of std (r3f_experiments.peer_hf)
    },
    entry_points={
        "console_scripts": [
            "r3f-convert-hf = r3f_experiments.convert_hf:main",
            "r3f-sweep = r3f_experiments.sweep:main",
            "r3f-probing = r3f_experiments.probing:main",
            "r3f-recipe = r3f_experiments.recipes.__main__:main",
        ],
    },
)
