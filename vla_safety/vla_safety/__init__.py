"""Action bounds, joint position/velocity limits, watchdogs, the command gate and a latched emergency stop."""
