"""The plugin name and summary content schema: the one source both sides use.

The writer (``keras_convviz.summary``) and the dashboard (``tb_plugin.plugin``)
import these names; nothing else spells them.
"""

PLUGIN_NAME = "convviz"

# Version of the JSON content stored in each tag's SummaryMetadata.plugin_data.
CONTENT_VERSION = 1

# kinds of artifact a tag can hold
KINDS = ("projection", "heatmap", "input", "ratio", "fraction", "grid", "image")
