"""Layer 2, one node: how this process reaches it (access, connection, targets), what it says
about itself (observe) and the admin commands sent to it (admin). Imports only the core."""
