"""Industrial traffic classes, flows and demand schedules (main paper, Table 1)."""

from __future__ import annotations

import enum

__all__ = ["TrafficClass"]


class TrafficClass(enum.Enum):
    """The four industrial traffic classes of the main paper (Sec. III-B, Table 1)."""

    TYPE_I = "type_i"  # critical control: < 1 ms latency, < 1 us jitter, OTP
    TYPE_II = "type_ii"  # critical telemetry: 10-50 ms, AES-256-GCM rekeyed every 10 s
    TYPE_III = "type_iii"  # massive IoT: tolerant > 1 s, AES-128 batch keys
    TYPE_IV = "type_iv"  # bulk: best effort, PQC/TLS, no quantum keys
