"""aio-pipeline's middlewares, one module per concern.

Each module imports ``aio_pipeline``'s core and never another middleware module; a
third-party library is imported only by the module that adapts it.
"""
