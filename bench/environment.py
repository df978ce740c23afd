"""Kept for the benchmarks not yet switched: ``environment(device, peer)`` is ``runtime.environment.environment_record``."""
import os; from runtime.environment import environment_record  # noqa: E401, E702
def environment(device, peer: str) -> dict: return environment_record(device, peer=peer, load_avg_start=os.getloadavg()[0])  # noqa: E501, E704
