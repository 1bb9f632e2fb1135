"""Alarm messages people can read: where, what, the value and the limit it crossed.

Values are shown at the display precision of their quantity (the precision Home Assistant
shows the same quantity with), so a message never contradicts itself: "12.84 V, below the
12.90 V alarm limit", and when the rounded value equals the rounded limit a digit is added.
An alarm held by its hysteresis says so instead of claiming a comparison that is not true.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quantity:
    """How one compared quantity is named and shown."""

    name: str
    unit: str
    decimals: int
    signed: bool = False  # deviations show their sign: "+0.52 V", "−0.29 V"
    spaced: bool = True  # "12.84 V" but "1.62×"

    @property
    def step(self) -> float:
        """The smallest change the message shows."""
        return float(10.0**-self.decimals)

    def format(self, value: float, extra: int = 0) -> str:
        digits = self.decimals + extra
        text = f"{value:+.{digits}f}" if self.signed else f"{value:.{digits}f}"
        text = text.replace("-", "−")
        return f"{text} {self.unit}" if self.spaced else f"{text}{self.unit}"


QUANTITIES: dict[str, Quantity] = {
    "voltage": Quantity("float voltage", "V", 2),
    "deviation": Quantity("deviation from the string mean", "V", 2, signed=True),
    "temperature": Quantity("temperature", "°C", 1),
    "above_ambient": Quantity("temperature above ambient", "K", 1, signed=True),
    "resistance": Quantity("internal resistance against its baseline", "×", 2, spaced=False),
    "resistance_median": Quantity(
        "internal resistance against the string median", "×", 2, spaced=False
    ),
    "spread": Quantity("voltage spread (highest − lowest block)", "V", 2),
    "spread_per_cell": Quantity("voltage spread (highest − lowest cell)", "V/cell", 3),
    "hydrogen": Quantity("hydrogen", "ppm", 0),
    "humidity": Quantity("humidity", "%", 0),
    "acid_level": Quantity("acid level", "%", 0),
}


def quantity(code: str) -> Quantity:
    """The quantity of a rule; an unknown one is shown plainly with two decimals."""
    return QUANTITIES.get(code) or Quantity(code.replace("_", " "), "", 2)


def limit_message(
    where: str,
    q: Quantity,
    value: float,
    bound: float | None,
    side: str,
    level: str,
    hysteresis: float,
) -> str:
    """``where: what value, relation`` for a value compared with one bound (already scaled to
    the unit shown). ``side`` is "high" or "low"; ``level`` "alarm" or "warning"."""
    if bound is None:
        return f"{where}: {q.name} {q.format(value)}"
    beyond = value > bound if side == "high" else value < bound
    extra = 0
    if beyond:
        while extra < 2 and q.format(value, extra) == q.format(bound, extra):
            extra += 1
        relation = "above" if side == "high" else "below"
        return (
            f"{where}: {q.name} {q.format(value, extra)}, "
            f"{relation} the {q.format(bound, extra)} {level} limit"
        )
    # Back inside the bound but held by the hysteresis: say when it clears.
    clears = bound - hysteresis if side == "high" else bound + hysteresis
    relation = "below" if side == "high" else "above"
    return (
        f"{where}: {q.name} {q.format(value)}, back inside the {q.format(bound)} {level} limit "
        f"(clears {relation} {q.format(clears)})"
    )
