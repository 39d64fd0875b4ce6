"""The bridge between the two paths: fits the behavioral array model from a
characterization file and validates it on held-out circuit runs. With the design-answer
commands, the only code that imports both :mod:`rpucircuit.circuit` and
:mod:`rpucircuit.model`.
"""
