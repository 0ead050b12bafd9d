"""The real-time VLA inference controller node that turns camera frames and a language command into JointTrajectory commands."""
