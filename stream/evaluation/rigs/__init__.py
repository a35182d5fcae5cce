"""Rig benchmark (issue 16): seeded pump rigs with 8 coupled sensors and labelled faults lasting minutes."""
