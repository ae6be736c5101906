"""Development server: dataset -> screened, Ray-Tune-tuned, honestly evaluated, versioned model
(docs/contracts.md §2-3).

Modules, one job each: ``settings`` (environment), ``data`` (load + check a training dataset), ``protocol``
(held-out split, folds, metrics, cross-validation), ``cluster`` (join or start Ray), ``screening`` (model
families as parallel Ray tasks), ``tuning`` (Random Forest search with Ray Tune), ``plots``, ``report``,
``train`` (the whole run, writing the artifact) and ``cli`` (click commands).
"""
