"""Hourly demand of Washington DC's Capital Bikeshare (ISLP Bikeshare, 2011): forecast a working
day hour by hour, see the commuter peaks, and how rain cuts demand, to plan how many bikes each
hour needs. See README.md."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import FIXTURES, expect, fp32, infer, output, push  # noqa: E402

MODEL = "bike-demand"
CLEAR, LIGHT_RAIN = 0, 2  # weather: 0 clear, 1 cloudy/misty, 2 light rain/snow, 3 heavy

print("1. publish the demand regressor (gradient-boosted trees)")
version = push(MODEL, FIXTURES / "bikeshare_demand.onnx", promote="true",
               description="ISLP Bikeshare: riders per hour, GradientBoostingRegressor")["version"]
print(f"   version {version}")

expected = json.loads((FIXTURES / "bikeshare_demand.expected.json").read_text())
response, _ = infer(MODEL, [expected["inputs"][0]])
expect(all(abs(p - r) < 1e-2 for p, r in zip(output(response, "variable"),
                                             expected["outputs"][0]["data"])),
       "the server's predictions equal onnxruntime's on held-out hours")


def day(weekday: int, workingday: int, weather: int) -> list[float]:
    """Riders per hour over one day: 24 rows, one request. Temperature, humidity and wind are
    normalised as in the data (0.5 is about 20 C; 0.55 humidity; light wind)."""
    hours = [[h, weekday, workingday, weather, 0.5, 0.55, 0.2] for h in range(24)]
    response, _ = infer(MODEL, [fp32("input", hours)])
    return output(response, "variable")


print("2. a dry Wednesday, hour by hour")
wednesday = day(3, 1, CLEAR)
peak = max(wednesday)
for hour, riders in enumerate(wednesday):
    print(f"   {hour:02d}:00 {riders:6.0f} {'#' * round(40 * riders / peak)}")
expect(wednesday[8] > 5 * wednesday[3] and wednesday[17] > 5 * wednesday[3],
       "the 8:00 and 17:00 commutes are more than 5x the 3:00 trough")

print("3. the same Wednesday in light rain, and a dry Sunday")
rainy = day(3, 1, LIGHT_RAIN)
sunday = day(0, 0, CLEAR)
print(f"   riders over the day: dry {sum(wednesday):.0f}, rain {sum(rainy):.0f}, "
      f"Sunday {sum(sunday):.0f}")
expect(sum(rainy) < 0.85 * sum(wednesday), "light rain cuts the day's demand by more than 15%")
expect(max(range(24), key=lambda h: sunday[h]) in range(11, 17),
       "on Sunday the busiest hour is around midday, not a commute")
