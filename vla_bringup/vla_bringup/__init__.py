"""Launch files, YAML configuration and the vla command that runs whole scenarios (sim, teleop, collect, train, deploy, evaluate, demo)."""
