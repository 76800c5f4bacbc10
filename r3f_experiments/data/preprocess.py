"""fairseq-preprocess run in this process (the synthetic task, GLUE, XNLI and the benchmark
binarise with it): one fairseq import for every call instead of one per subprocess."""

import logging


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
