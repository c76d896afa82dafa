"""The notebook layer: the only code that takes a notebook session.

- ``params``  typed parameter groups, one commented line each; the one place defaults live
- ``section`` the validation every parameter group shares
- ``config``  reading, overriding (``-p``) and writing configurations
- ``configs`` parameter groups → library configs (``TrainConfig``, loss weights, …), for every step
- ``layout``  the run folder: what earlier steps decided, checkpoints, evaluations
- ``keys``    every reuse key, from the fields that change a result; the kinds of results
- ``session`` ``start()``: configuration + run folder + device + MLflow run of a notebook
- ``steps``   what notebooks call: prepare data, pretrain, train a stage, evaluate

The library (``teminal.*`` outside this package) takes explicit arguments and never a session.
"""
