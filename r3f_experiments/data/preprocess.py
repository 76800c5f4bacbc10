"""fairseq-preprocess run in this process (the synthetic task, GLUE, XNLI and the benchmark
binarise with it): one fairseq import for every call instead of one per subprocess."""

import logging
import struct


def preprocess(*args: str, only_source: bool = True) -> None:
    """``fairseq-preprocess [--only-source] --workers 1 ARGS...`` via fairseq's own entry point
    (``only_source=False`` for source/target pairs, e.g. summarization).

    fairseq-preprocess adds a file handler (``DESTDIR/preprocess.log``) to its logger on every
    call and never removes it; it is closed here so that repeated calls do not keep files open
    or write into earlier destinations' logs.
    """
    from fairseq import options
    from fairseq_cli import preprocess as fairseq_preprocess

    logger = logging.getLogger("fairseq_cli.preprocess")
    before = list(logger.handlers)
    try:
        parser = options.get_preprocessing_parser()
        mode = ["--only-source"] if only_source else []
        fairseq_preprocess.main(parser.parse_args([*mode, "--workers", "1", *args]))
    finally:
        for handler in logger.handlers[:]:
            if handler not in before:
                logger.removeHandler(handler)
                handler.close()


def binarized_size(idx_path: str) -> int:
    """Sentences in a binarised split: the count in the header of its ``.idx`` (fairseq's mmap
    index: 9-byte magic, version, dtype code, then the count), without importing fairseq."""
    with open(idx_path, "rb") as f:
        header = f.read(26)
    if len(header) < 26 or header[:9] != b"MMIDIDX\x00\x00":
        raise ValueError(f"{idx_path}: not a fairseq mmap index (fairseq-preprocess --dataset-impl mmap writes one)")
    return struct.unpack("<Q", header[18:26])[0]
