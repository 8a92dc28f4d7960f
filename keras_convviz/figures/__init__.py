"""Every picture the library draws, one module per method family.

Compute lives in ``keras_convviz.methods`` and returns numbers; the modules
here turn those results into RGB ``uint8`` arrays (panels, grids, GIF
frames) with titles, class names and colour scales. The CLI and the
callback both draw through them, so a figure looks the same everywhere.
"""
