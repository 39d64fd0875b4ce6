"""The circuit path: a tile config rendered as SPICE netlists, simulated by ngspice, solved
by the nodal solver, compared with analytic references, and measured into a
characterization file.

Modules: :mod:`.netlist` (element records and the renderer), :mod:`.spice` (the ngspice
backend, the only module that starts the simulator), :mod:`.nodal` (the resistive network
solved without a simulator), :mod:`.analytic` (closed-form references), :mod:`.extract`
(one analysis per case: transfer, update, noise, timing) and :mod:`.characterize` (the
campaign, its file, report and plots). Nothing here imports the model path.
"""
