"""``python -m keras_convviz.beam``: the end-to-end top-k pipeline (see ``pipeline.main``)."""

import sys

from keras_convviz.beam.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
