"""rpucircuit: mixed-signal co-simulation of resistive processing unit crossbar arrays.

Two paths meet only in calibration: the circuit path (config -> netlist -> ngspice ->
extract) and the model path (config -> behavioral array model -> training). Importing
this package imports neither path; import the submodule you need.
"""

__version__ = "0.1.0"
