"""The characterization campaign: a list of jobs from a config, run in parallel, cached,
written to one HDF5 file with plots and a Markdown report.

:mod:`.campaign` holds what to simulate (:class:`CampaignConfig`, the jobs of :func:`plan`,
the campaign TOML of :func:`load_spec`); :mod:`.run` the job function of every analysis,
:func:`run_campaign` and :func:`load`; :mod:`.plots` and :mod:`.report` what a campaign
writes besides ``characterization.h5`` (schema in ``docs/characterization-schema.md``).
The public names are re-exported here: ``from rpucircuit.circuit import characterize as ch``.
"""

from rpucircuit.circuit.characterize.campaign import (
    ANALYSES,
    KIND,
    RESULT_NAME,
    SCHEMA_VERSION,
    CampaignConfig,
    CampaignSpec,
    CharacterizationJob,
    code_digest,
    job_seed,
    load_spec,
    plan,
    quick_campaign,
    spec_toml,
)
from rpucircuit.circuit.characterize.plots import write_plots
from rpucircuit.circuit.characterize.report import write_report
from rpucircuit.circuit.characterize.run import (
    CampaignRun,
    budget_curve,
    circuit_parameters,
    load,
    run_campaign,
    run_job,
    spice_workdir,
)

__all__ = [
    "ANALYSES",
    "KIND",
    "RESULT_NAME",
    "SCHEMA_VERSION",
    "CampaignConfig",
    "CampaignRun",
    "CampaignSpec",
    "CharacterizationJob",
    "budget_curve",
    "circuit_parameters",
    "code_digest",
    "job_seed",
    "load",
    "load_spec",
    "plan",
    "quick_campaign",
    "run_campaign",
    "run_job",
    "spec_toml",
    "spice_workdir",
    "write_plots",
    "write_report",
]
