"""neurrator.data: Allen Neuropixels NWB reading, session simulation, stimuli, downloads.

Main entry points: :func:`neurrator.data.allen.read_session`,
:func:`neurrator.data.simulate.simulate_session` with
:func:`neurrator.data.nwb_write.write_allen_nwb`, :func:`neurrator.data.stimulus.load_stimulus`,
:func:`load_stimulus_record` and :func:`neurrator.data.download.download_session`.
"""

from neurrator.data.stimulus_record import load_stimulus_record, save_stimulus_record

__all__ = ["load_stimulus_record", "save_stimulus_record"]
