"""The pushgate gateway: HTTP job submission and WebSocket delivery, stateless per replica."""
