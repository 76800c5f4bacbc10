"""WordPiece tokenisation for models converted from Hugging Face BERT (``r3f_experiments.convert_hf``).

    python -m r3f_experiments.data.wordpiece FOLDER < text > tokens

FOLDER is the converter's output (or the Hugging Face model folder): ``tokenizer.json`` when
present, else ``vocab.txt`` (lower-casing as ``tokenizer_config.json``'s ``do_lower_case``, default
on). Each input line becomes one line of WordPiece token strings separated by spaces, without
``[CLS]``/``[SEP]``, untruncated and unpadded: ``fairseq-preprocess --srcdict FOLDER/dict.txt`` maps
the strings to rows of the converted embedding, appends ``</s>`` (= ``[SEP]``), and
``--task sentence_prediction --init-token 0`` prepends ``<s>`` (= ``[CLS]``), which is BERT's
``[CLS] A [SEP]``. For a pair, leave ``--separator-token`` out: ``<s> A </s> B </s>`` is BERT's
``[CLS] A [SEP] B [SEP]`` (without its segment-1 embedding, which fairseq's RoBERTa lacks).

Also registers the fairseq BPE ``wordpiece`` (``--bpe wordpiece --wordpiece-dir FOLDER``), which
the converter records in ``model.pt`` so that ``RobertaModel.from_pretrained`` builds it and the
hub's ``encode``/``decode`` speak WordPiece.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Iterable, List

from fairseq.data.encoders import register_bpe
from fairseq.dataclass import FairseqDataclass


class WordPiece:
    """Token strings of a BERT WordPiece tokenizer (Hugging Face ``tokenizers``)."""

    def __init__(self, folder: str):
        tokenizer_json = os.path.join(folder, "tokenizer.json")
        vocab_txt = os.path.join(folder, "vocab.txt")
        if os.path.isfile(tokenizer_json):
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(tokenizer_json)
            # a sentence-transformers tokenizer.json pads and truncates every input to 128 tokens
            self.tokenizer.no_padding()
            self.tokenizer.no_truncation()
        elif os.path.isfile(vocab_txt):
            from tokenizers.implementations import BertWordPieceTokenizer

            lowercase = True
            config = os.path.join(folder, "tokenizer_config.json")
            if os.path.isfile(config):
                with open(config, encoding="utf-8") as f:
                    lowercase = json.load(f).get("do_lower_case", True)
            self.tokenizer = BertWordPieceTokenizer(vocab_txt, lowercase=lowercase)
        else:
            raise FileNotFoundError(
                f"{folder}: neither tokenizer.json nor vocab.txt (a WordPiece folder is the "
                "output of python -m r3f_experiments.convert_hf or a Hugging Face BERT folder)"
            )

    def tokens(self, texts: List[str]) -> List[List[str]]:
        """WordPiece token strings of each text, without special tokens."""
        return [e.tokens for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def encode_lines(self, lines: Iterable[str]) -> List[str]:
        """One space-separated line of tokens per input line (newlines stripped)."""
        return [" ".join(t) for t in self.tokens([line.rstrip("\n") for line in lines])]


@dataclass
class WordPieceBPEConfig(FairseqDataclass):
    wordpiece_dir: str = field(
        default="",
        metadata={
            "help": "folder with tokenizer.json or vocab.txt (the output of python -m r3f_experiments.convert_hf)"
        },
    )


@register_bpe("wordpiece", dataclass=WordPieceBPEConfig)
class WordPieceBPE:
    """fairseq's BPE interface over ``WordPiece`` (what fairseq's ``bert`` BPE does with transformers)."""

    def __init__(self, cfg: WordPieceBPEConfig):
        if not cfg.wordpiece_dir:
            raise ValueError("--bpe wordpiece needs --wordpiece-dir (a folder with tokenizer.json or vocab.txt)")
        self.wordpiece = WordPiece(cfg.wordpiece_dir)

    def encode(self, x: str) -> str:
        return " ".join(self.wordpiece.tokens([x])[0])

    def decode(self, x: str) -> str:
        return self.wordpiece.tokenizer.decoder.decode(x.split())  # joins "##" pieces, cleans up spaces

    def is_beginning_of_word(self, x: str) -> bool:
        return not x.startswith("##")
