"""Built-in components, registered through the same hooks as any third-party plugin.

Every module in this package is a plugin module and is loaded automatically by
``lbpbench.registry`` (discovered with ``pkgutil.iter_modules``; names starting with ``_`` are
skipped). A room adds its built-ins by adding one file here with functions marked
``@lbpbench.hookimpl``: ``protocol.py`` (node types, aggregators, learners), ``tasks.py`` (task
families), ``baselines.py`` (sgd, adam, maml). Keep heavy imports inside the factories where that
is cheap to do, so ``lbpbench plugins`` stays fast.
"""
