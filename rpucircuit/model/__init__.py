"""The model path: the behavioral array model and the networks built on it.

Modules: :mod:`.kernels` (compiled random streams, reads and updates, with plain reference
implementations), :mod:`.tile` (:class:`~rpucircuit.model.tile.AnalogTile`, one crossbar
under an :class:`~rpucircuit.config.rpu.RPUConfig`), :mod:`.irdrop` (the closed-form IR-drop
map), :mod:`.modelfile` (array-model files), :mod:`.layers` and :mod:`.network`. Nothing
here imports the circuit path, PySpice or ngspice: training runs without a simulator.
"""
