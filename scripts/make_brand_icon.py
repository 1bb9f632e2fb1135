"""Draw custom_components/bacs/brand/icon.png (256×256, transparent): a battery with a
balance bar, so HACS and Home Assistant (2026.3+) show the integration's own icon."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "custom_components/bacs/brand/icon.png"
SIZE = 256
GREEN = (46, 160, 67, 255)
DARK = (33, 48, 66, 255)


def main() -> None:
    img = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((36, 64, 208, 208), radius=18, outline=DARK, width=14)  # body
    d.rounded_rectangle((208, 108, 232, 164), radius=6, fill=DARK)  # terminal
    for i, h in enumerate((96, 84, 100, 90)):  # four blocks, nearly equal: balanced cells
        x = 58 + i * 38
        d.rounded_rectangle((x, 190 - h, x + 26, 190), radius=5, fill=GREEN)
    d.line((52, 84, 192, 84), fill=DARK, width=6)  # the target line they are brought to
    OUT.parent.mkdir(parents=True, exist_ok=True)
    img.save(OUT, optimize=True)


if __name__ == "__main__":
    main()
