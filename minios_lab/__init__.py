"""minios-lab: the Mini-OS course kit."""
