"""Crossbar tile circuits as data, rendered once and deterministically into SPICE text.

``build_*`` functions return a :class:`Netlist` of small element records; :func:`render`
turns it into ngspice input text, including the ``.control`` block that runs the analyses,
``write``\\s the raw file ``out.raw`` and ``quit``\\s. That block is generated here from
validated records only: no user string ever reaches it.

Modules: :mod:`.elements` (records, validation, :func:`render`), :mod:`.blocks` (pieces the
builders share, the SPICE budget check), :mod:`.read`, :mod:`.update`, :mod:`.line` (noise
and step response of one line) and :mod:`.cycle` (random examples for the CLI). Everything
public is re-exported here: ``from rpucircuit.circuit import netlist; netlist.render(...)``.
Builders that make a whole-tile netlist (:func:`build_read`, :func:`build_update`,
:func:`build_cycle`) refuse one whose estimated ngspice time exceeds
``tile.spice_limit_s``; the config itself does not, so the nodal solver takes any size.

Topology (one RC segment per cross point on every line)
-------------------------------------------------------
* Signed weights: ``w ∝ G⁺ − G⁻`` on two identical arrays ``p`` (G⁺) and ``m`` (G⁻). The
  ``m`` array's input lines are driven with the opposite polarity, and both arrays' output
  line ``i`` end at the same integrator summing node ``sum{i}``, so the integrator sums
  ``(G⁺ − G⁻)·V``. With ``tile.paired = False`` only array ``p`` exists.
* Forward cycle: inputs on the columns, integrators on the rows. Column ``j``'s driver sits
  at the row-0 end: driver → ``{a}c{j}_d`` → segment → ``{a}c{j}_r0`` → … → ``{a}c{j}_r{R-1}``
  (R segments). Row ``i`` runs ``{a}r{i}_c0`` → … → ``{a}r{i}_c{C-1}`` → segment →
  ``sum{i}``: the integrator sits at the far (last-column) end; the column-0 end is open.
* Backward cycle: the transpose. Row ``i``'s driver sits at the column-0 end
  (``{a}r{i}_d`` → ``{a}r{i}_c0`` …); column ``j`` ends, past row ``R-1``, at ``sum{j}``.
* Device ``(i, j)`` of array ``a`` connects ``{a}r{i}_c{j}`` and ``{a}c{j}_r{i}``. Every line
  node has its segment capacitance to ground (transient netlists only).
* Integrators are inverting: ``v(out{i}) = −Q_i/C_int`` (ideal op-amp), Q_i the charge that
  flowed from the lines into ``sum{i}``. Operating-point netlists replace each integrator by
  a 0 V source ``vsum{i}`` from ``sum{i}`` to ground; ``i(vsum{i})`` > 0 is current into the
  summing node, and ``Q_i = i(vsum{i})·t_meas`` because each input line is driven with its
  time-averaged voltage (its volt-seconds / t_meas), exact for linear devices by linearity.

Input encoding: an input ``x`` is quantized to ``round(|x|·steps)/steps``; time encoding
drives ``sign(x)·V_read`` for ``|x|·t_meas``, amplitude encoding ``x·V_read`` for ``t_meas``
(trapezoids whose area is exactly the volt-seconds). Pulses start at ``t_reset``.
"""

from rpucircuit.circuit.netlist.blocks import (
    Direction,
    ReadAnalysis,
    read_times,
    refuse_over_budget,
)
from rpucircuit.circuit.netlist.cycle import CYCLES, Cycle, build_cycle
from rpucircuit.circuit.netlist.elements import (
    NETLIST_DIR,
    RAW_NAME,
    AnalysisRecord,
    Capacitor,
    Element,
    Instance,
    Netlist,
    Noise,
    Op,
    Resistor,
    Tran,
    VSource,
    check_name,
    check_node,
    check_value,
    fmt,
    libraries,
    render,
)
from rpucircuit.circuit.netlist.line import build_line, build_noise
from rpucircuit.circuit.netlist.read import build_read
from rpucircuit.circuit.netlist.update import build_update, device_rate_factors, update_slot_times
from rpucircuit.config.tile import input_volt_seconds, quantize_inputs

__all__ = [
    "CYCLES",
    "NETLIST_DIR",
    "RAW_NAME",
    "AnalysisRecord",
    "Capacitor",
    "Cycle",
    "Direction",
    "Element",
    "Instance",
    "Netlist",
    "Noise",
    "Op",
    "ReadAnalysis",
    "Resistor",
    "Tran",
    "VSource",
    "build_cycle",
    "build_line",
    "build_noise",
    "build_read",
    "build_update",
    "check_name",
    "check_node",
    "check_value",
    "device_rate_factors",
    "fmt",
    "input_volt_seconds",
    "libraries",
    "quantize_inputs",
    "read_times",
    "refuse_over_budget",
    "render",
    "update_slot_times",
]
