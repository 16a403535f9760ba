"""The studio: a Panel app to build pipelines visually, run them and browse their runs.

``nbflow studio [FOLDER]`` serves it on 127.0.0.1. The package is split by concern:

``editing.py``  the notebook as JSON: add, delete, rename steps, tags, edges, layout
                (pure; no Panel, imported by its own fast tests)
``canvas.py``   the graph component (cytoscape.js bundled from npm at install time)
``app.py``      the app: canvas, step editor, parameters, runs, reports; and ``serve``

Importing this package imports nothing heavy; Panel is loaded by ``app`` and ``canvas``.
"""
