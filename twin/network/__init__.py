"""The network model: node state, the time-varying graph G(t), traffic, keys, entanglement,
handover and routing primitives. Pure and deterministic; built on twin.physics.
"""
