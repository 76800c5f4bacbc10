"""fairseq-r3f's refusal of repeated ``--user-dir`` flags when fairseq never imports the plugin.

fairseq keeps only the last of several ``--user-dir`` flags. With the plugin last, the plugin
refuses the flags itself when it is imported (``fairseq_r3f/registration.py``). With the plugin
first (``--user-dir fairseq_r3f --user-dir .../examples/rxf/rxf_src``), fairseq imports only the
other folder, e.g. the authors' reference, whose noise never reaches RoBERTa, and trains with it.
``fairseq-train`` composes its configuration with Hydra right after parsing its flags, and Hydra
imports the modules of the ``hydra_plugins`` namespace package and runs their search-path plugins
then: this one refuses the flags there, before any model is built. It reads only the command line
and imports nothing of the plugin.
"""

import os
import sys

from hydra.plugins.search_path_plugin import SearchPathPlugin

PLUGIN = "fairseq_r3f"  # the folder --user-dir names: fairseq imports it under this name


def user_dirs(argv) -> list:
    """The values of every ``--user-dir`` flag of ``argv``, in order."""
    dirs = []
    for i, arg in enumerate(argv):
        if arg == "--user-dir" and i + 1 < len(argv):
            dirs.append(argv[i + 1])
        elif arg.startswith("--user-dir="):
            dirs.append(arg.split("=", 1)[1])
    return dirs


def refuse_repeated_user_dir_beside_the_plugin(argv=None) -> None:
    """A ValueError when ``argv`` names fairseq-r3f's folder and another one with ``--user-dir``."""
    dirs = user_dirs(sys.argv if argv is None else argv)
    if len({os.path.abspath(d) for d in dirs}) < 2:
        return
    if not any(os.path.basename(os.path.normpath(d)) == PLUGIN for d in dirs):
        return
    loaded = dirs[-1]
    consequence = "" if os.path.basename(os.path.normpath(loaded)) == PLUGIN else ", and fairseq-r3f is not loaded"
    raise ValueError(
        f"--user-dir is given {len(dirs)} times ({', '.join(dirs)}): fairseq loads only the last one "
        f"({loaded}){consequence}. Pass a single --user-dir."
    )


class FairseqR3FUserDirCheck(SearchPathPlugin):
    """Refuses repeated ``--user-dir`` flags beside fairseq-r3f; changes no search path."""

    def manipulate_search_path(self, search_path) -> None:
        refuse_repeated_user_dir_beside_the_plugin()
