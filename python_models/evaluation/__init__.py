"""Evaluation of forecasts: the walk-forward harness (folds with purge and embargo and one model on one
series in ``walk_forward``, every model over a universe in ``panel``, the stored fits' forecasts and
refits in ``refresh``), accuracy metrics and the Diebold–Mariano test (``metrics``), and statistical
comparisons across models: pairwise tests, bootstrap intervals (``comparison``)."""
