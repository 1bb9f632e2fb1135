"""bacs_core: the Battery Analysis & Care System manager as a reusable asyncio library.

Units are SI at every API (V, A, °C, mΩ); positive current means charging.
"""

__version__ = "0.1.0"
