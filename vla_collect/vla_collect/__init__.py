"""Teleoperation (joystick, keyboard) and the synchronised 30 Hz demonstration recorder writing HDF5 episodes, plus dataset tools."""
