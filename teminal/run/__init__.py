"""The notebook layer: the only code that takes a notebook session.

- ``params``  typed parameter groups; the one place defaults live
- ``config``  reading, overriding (``-p``) and writing configurations
- ``layout``  the run folder: what earlier steps decided, checkpoints, evaluations
- ``keys``    every reuse key, from the fields that change a result; the kinds of results
- ``session`` ``start()``: configuration + run folder + device + MLflow run of a notebook
- ``steps``   what notebooks call: prepare data, pretrain, train a stage, evaluate

The library (``teminal.*`` outside this package) takes explicit arguments and never a session.
"""
